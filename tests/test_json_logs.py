"""LOG_FORMAT=json: every line the container writes, on stdout and stderr,
is one JSON object: the entry-point's messages, nginx's error log, uWSGI's
own lines, and an app's traceback as one object with the traceback in a
field. An access line names the client's own method, path and query, also
for the requests nginx refuses itself. Text stays the default."""

import json
import uuid

from helpers import docker


def objects(lines: list[str]) -> list[dict]:
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}") from None
        assert isinstance(parsed[-1], dict), line
    return parsed


def stderr_lines(container) -> list[str]:
    return docker("logs", container.name, check=False).stderr.splitlines()


def test_every_line_is_json(containers, fixture_image):
    container = containers.serving(image=fixture_image["image"], env={"LOG_FORMAT": "json"})
    assert container.request("/boom").status == 500  # a traceback
    # nginx's error log: a body past MAX_BODY_SIZE (refused before it is sent).
    too_large = container.raw(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 900000000\r\n"
                              b"Connection: close\r\n\r\n")
    assert too_large.startswith(b"HTTP/1.1 413 ")
    container.wait_until(lambda: any('"status":413' in line for line in container.stdout_lines()),
                         "the access log line")
    container.wait_until(lambda: any("RuntimeError: secret" in line for line in stderr_lines(container)),
                         "the traceback")
    docker("stop", container.name, timeout=30)  # the stop's own lines too
    out, err = objects(container.stdout_lines()), objects(stderr_lines(container))
    assert any(record.get("path") == "/boom" and record["status"] == 500 for record in out)
    sources = {record["source"] for record in err}
    assert {"flaskbox", "nginx", "uwsgi", "python"} <= sources, sources
    assert any(record["source"] == "flaskbox" and record["message"].startswith("serving ") for record in err)
    assert any(record["source"] == "flaskbox" and record["message"] == "stopped" for record in err)
    assert any(record["source"] == "nginx" and "too large body: 900000000 bytes" in record["message"]
               and record["level"] == "error" for record in err)
    assert any(record["source"] == "uwsgi" and "uWSGI" in record["message"] for record in err)
    (traceback,) = [record for record in err if record["source"] == "python"]
    assert traceback["traceback"].startswith("Traceback (most recent call last):\n")
    assert traceback["traceback"].count("\n") >= 3 and traceback["message"] in traceback["traceback"]
    assert traceback["level"] == "error"


def test_text_stays_the_default(containers, fixture_image):
    container = containers.serving(image=fixture_image["image"])
    assert container.request("/boom").status == 500
    container.wait_until(lambda: "Traceback (most recent call last):" in container.logs(), "the traceback")
    assert any(line.startswith("flaskbox: serving ") for line in stderr_lines(container))


def test_each_line_names_the_clients_own_method_path_and_query(containers, fixture_image):
    # nginx refuses these itself, through an error_page: an internal
    # redirect that turned its own variables into GET /-/line-too-long and
    # the like. The line names what the client sent, percent-encoding and
    # all, as the text log's request line has it.
    container = containers.serving(image=fixture_image["image"], env={"LOG_FORMAT": "json"})
    token = uuid.uuid4().hex[:8]
    close = b"Host: a\r\nConnection: close\r\n"
    long_query = "a" * 17000  # past MAX_LINE_SIZE
    refusals = [  # (request line, more headers, status)
        (f"PUT /long-{token}?{long_query} HTTP/1.1", b"", 414),
        (f"PATCH /te-{token}?x=%22y%22 HTTP/1.1", b"Transfer-Encoding: gzip, chunked\r\n", 400),
        (f"PUT /body-{token} HTTP/1.1", b"Content-Length: 99999999\r\n", 413),
        (f"DELETE /header-{token}?h HTTP/1.1", b"X-Big: " + b"b" * 17000 + b"\r\n", 400),
        (f"POST /version-{token}?v=2 HTTP/2.0", b"", 400),  # 505, answered 400
    ]
    for line, headers, status in refusals:
        answer = container.raw(line.encode() + b"\r\n" + close + headers + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 %d " % status), (line[:40], answer[:100])
    # A TLS handshake on the HTTP port: no method, path or query to tell.
    handshake = container.raw(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n")
    assert handshake.startswith(b"HTTP/1.1 400 ")
    # The usual requests log as they did, the path as sent.
    assert container.request(f"/echo?t={token}&q=%22", method="POST", body=b"x").status == 200
    assert container.request(f"/caf%C3%A9/{token}%20x?n=%C3%A9").status == 404

    expected = {  # path: (method, query, status); None: the part of the query nginx read
        f"/long-{token}": ("PUT", None, 414),
        f"/te-{token}": ("PATCH", "x=%22y%22", 400),
        f"/body-{token}": ("PUT", "", 413),
        f"/header-{token}": ("DELETE", "h", 400),
        f"/version-{token}": ("POST", "v=2", 400),
        "": ("", "", 400),  # the handshake
        "/echo": ("POST", f"t={token}&q=%22", 200),
        f"/caf%C3%A9/{token}%20x": ("GET", "n=%C3%A9", 404),
    }

    def access_records() -> dict[str, dict]:
        records = {record["path"]: record for record in objects(container.stdout_lines())}
        return records if set(expected) <= set(records) else {}

    records = container.wait_until(access_records, "every request's line")
    for path, (method, query, status) in expected.items():
        record = records[path]
        assert (record["method"], record["status"]) == (method, status), record
        if query is None:
            assert record["query"] and long_query.startswith(record["query"]), record
        else:
            assert record["query"] == query, record
    assert not any(path.startswith("/-/") for path in records), list(records)
