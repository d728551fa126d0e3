"""Logs: one access-log line per request on stdout, text or JSON; only the
exact health requests go unlogged."""

import json
import re
import uuid

import pytest


def lines_for(container, path: str) -> list[str]:
    return [line for line in container.stdout_lines() if path in line]


def test_json_log_is_one_object_per_request(containers):
    c = containers.run(env={"LOG_FORMAT": "json"})
    c.wait_http("/")
    path = f"/api/hello/{uuid.uuid4().hex}"  # 404 from the app
    given_id = f"req-{uuid.uuid4().hex[:8]}"
    c.request(path, headers={"X-Request-ID": given_id})
    c.request("/api/hello?name=x")

    c.wait_until(lambda: lines_for(c, path), "the request's log line", timeout=5)
    # Everything on stdout is JSON: one object per line, nothing else.
    records = [json.loads(line) for line in c.stdout_lines()]
    mine = [r for r in records if r["path"] == path]
    assert len(mine) == 1
    record = mine[0]
    assert record["method"] == "GET" and record["status"] == 404
    assert isinstance(record["bytes"], int) and record["bytes"] > 0
    assert isinstance(record["request_time"], (int, float))
    assert re.fullmatch(r"\d+\.\d{3}", record["upstream_time"])
    assert record["request_id"] == given_id
    assert "time" in record and record["time"][:4].isdigit()
    hello = [r for r in records if r["path"] == "/api/hello"]
    assert len(hello) == 1 and hello[0]["query"] == "name=x" and hello[0]["status"] == 200


def test_text_log_is_human_readable_and_not_duplicated(containers):
    c = containers.run()
    c.wait_http("/")
    path = f"/api/hello?name={uuid.uuid4().hex}"
    c.request(path)
    c.wait_until(lambda: lines_for(c, path), "the request's log line", timeout=5)
    (line,) = lines_for(c, path)
    assert f'"GET {path} HTTP/1.1" 200 ' in line
    assert re.search(r" rt=\d+\.\d{3} ut=\d+\.\d{3} id=[0-9a-f]{32} trace=- done=ok$", line), line
    # uWSGI does not log the same request a second time.
    assert c.logs().count(path) == 1


@pytest.mark.parametrize("path, status", [("/-/healthy?x=1", 404), ("/-//healthy", 404),
                                          ("/-/%68ealthy", 404), ("/-/alive?x=1", 200)])
def test_health_look_alikes_are_logged(containers, fixture_image, path, status):
    # Only the exact health requests go unlogged. The /-/healthy look-alikes
    # reach the app (which has no such route: 404); /-/alive's is nginx's.
    c = containers.serving(image=fixture_image["image"])
    for exact in ("/-/healthy", "/-/alive"):
        assert c.request(exact).status == 200
    assert c.request(path).status == status
    c.wait_until(lambda: lines_for(c, f'"GET {path} HTTP/1.1" {status}'), "the look-alike's log line",
                 timeout=5)
    exact = ('"GET /-/healthy HTTP', '"GET /-/alive HTTP')
    assert not [line for line in c.stdout_lines() if any(request in line for request in exact)]


def uwsgi_line(container, request_id: str) -> str | None:
    return next((line for line in container.logs().splitlines()
                 if f"id={request_id}" in line and "(HTTP/1.1 500)" in line), None)


def test_uwsgi_names_the_client_of_a_5xx_as_the_access_log_does(containers, fixture_image):
    # uWSGI logs a 5xx itself (nginx cannot see why): its line names the
    # client nginx concluded and the request id of nginx's line, never the
    # unix socket's 0.0.0.0. Behind a trusted proxy, the real client.
    c = containers.serving(image=fixture_image["image"], env={"TRUSTED_PROXIES": "127.0.0.3"})
    for source, client, headers in (("127.0.0.2", "127.0.0.2", {}),
                                    ("127.0.0.3", "203.0.113.9", {"X-Forwarded-For": "203.0.113.9"})):
        request_id = f"boom-{uuid.uuid4().hex[:12]}"
        resp = c.request("/boom", headers={"X-Request-ID": request_id, **headers}, source=source)
        assert resp.status == 500
        line = c.wait_until(lambda rid=request_id: uwsgi_line(c, rid), "uWSGI's line for the 500", timeout=10)
        # Before: "[pid: 25|app: 0|req: 4/6] 0.0.0.0 () {32 vars ...} GET /boom => ..."
        assert f"] {client} [" in line and "0.0.0.0" not in line, line
        access = c.wait_until(lambda rid=request_id: [row for row in c.stdout_lines() if f"id={rid}" in row],
                              "nginx's line", timeout=5)
        assert access[0].startswith(f"{client} - "), access


def test_a_referer_with_control_characters_never_reaches_the_log(containers):
    # nginx's error log writes the Referer as it came: an escape sequence
    # there cleared or recoloured the terminal `docker logs` ran in. Such a
    # request is refused before any error line could name it (here: the
    # 413 for a body past MAX_BODY_SIZE, whose line names the Referer).
    c = containers.serving()
    mark = uuid.uuid4().hex
    forged = f"http://r/\x1b[2J\x1b[31m{mark}\x07".encode()
    for request in (b"GET / HTTP/1.1\r\n",
                    b"POST /api/hello HTTP/1.1\r\nContent-Length: 99999999\r\n"):
        answer = c.raw(request + b"Host: a\r\nReferer: " + forged + b"\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    # C1's CSI in UTF-8, which a terminal acts on as it does on ESC [.
    answer = c.raw(b"GET / HTTP/1.1\r\nHost: a\r\nReferer: http://r/\xc2\x9b2J\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    # The same too-large body with a plain Referer: its 413, and nginx's
    # error line names that Referer, as it would have named the forged one.
    plain = f"http://r/{mark}".encode()
    answer = c.raw(b"POST /api/hello HTTP/1.1\r\nContent-Length: 99999999\r\nHost: a\r\nReferer: " + plain
                   + b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    c.wait_until(lambda: f'referrer: "http://r/{mark}"' in c.logs(), "the 413's error line")
    logs = c.logs()
    # The access log escapes what it writes (\x1B); nothing raw anywhere.
    assert "\x1b" not in logs and "\x07" not in logs, logs
    # An ordinary Referer (a tab is no control to fear) is served.
    assert c.request("/", headers={"Referer": "https://a.example/x?y=1"}).status == 200
