"""LOG_FORMAT=json: every line the container writes, on stdout and stderr,
is one JSON object: the entry-point's messages, nginx's error log, uWSGI's
own lines, and an app's traceback as one object with the traceback in a
field. Text stays the default."""

import json

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
