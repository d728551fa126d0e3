"""Oversized and malformed requests get a clear 4xx from nginx, and the server
stays healthy after each of them."""

import re

import pytest

MALFORMED = {
    "garbage": b"GARBAGE\r\n\r\n",
    "no-target": b"GET\r\n\r\n",
    "extra-field": b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
    "bad-method": b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "control-char": b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-escape": b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-header": b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
    "tls-to-http": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 40 + b"\r\n\r\n",
}


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1])


def still_healthy(container) -> None:
    assert container.request("/").status == 200, container.logs()
    assert container.exec("healthcheck.sh").returncode == 0, container.logs()


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving(env={"MAX_BODY_SIZE": "1m"})


def test_body_within_max_body_size_is_accepted_larger_is_413(server):
    half = server.request("/upload", method="POST", body=b"x" * 512 * 1024)
    assert half.status == 200 and half.json() == {"received": 512 * 1024}
    too_big = server.request("/upload", method="POST", body=b"x" * 2 * 1024 * 1024)
    assert too_big.status == 413
    still_healthy(server)


def test_a_body_refused_for_max_body_size_names_the_setting(server):
    # Issue 54: the 413's access line carries the limit's note, as a
    # MAX_LINE_SIZE refusal's does, and the start names the setting's value.
    too_big = server.request("/upload?named", method="POST", body=b"x" * 2 * 1024 * 1024)
    assert too_big.status == 413
    server.wait_until(lambda: re.search(r'"POST /upload\?named HTTP/1.1" 413 .* limit=MAX_BODY_SIZE$',
                                        server.logs(), re.MULTILINE), "the 413's access line with its note")
    assert ("bodies up to MAX_BODY_SIZE (1m, as set; larger: 413, logged with limit=MAX_BODY_SIZE)"
            in server.logs())
    # Chunked, it passes the limit as nginx reads it: the same note.
    # (an iterable body, no length given: http.client sends it chunked)
    chunked = server.request("/upload?chunked", method="POST", body=iter([b"x" * 64 * 1024] * 32))
    assert chunked.status == 413
    server.wait_until(lambda: re.search(r'"POST /upload\?chunked HTTP/1.1" 413 .* limit=MAX_BODY_SIZE$',
                                        server.logs(), re.MULTILINE), "the chunked 413's line with its note")
    # A health probe's own bound (1k) is not MAX_BODY_SIZE: no such note.
    probe = server.request("/-/healthy?body", method="POST", body=b"x" * 4096)
    assert probe.status == 413
    assert not re.search(r"/-/healthy\?body .* limit=MAX_BODY_SIZE$", server.logs(), re.MULTILINE)
    still_healthy(server)


def test_default_body_limit_is_finite(containers, fixture_image):
    # 10m by default (README): 11 MB is refused, 9 MB goes through.
    c = containers.serving(image=fixture_image["image"])
    assert c.request("/upload", method="POST", body=b"x" * 11 * 1024 * 1024).status == 413
    assert c.request("/upload", method="POST", body=b"x" * 9 * 1024 * 1024).json() == {
        "received": 9 * 1024 * 1024}


def test_12kb_of_headers_and_cookies_are_served(server):
    cookies = "; ".join(f"c{i}={'v' * 1000}" for i in range(4))
    headers = {f"X-Pad-{i}": "p" * 2000 for i in range(4)}
    headers["Cookie"] = cookies
    resp = server.request("/headers", headers=headers)
    assert resp.status == 200, resp.text
    seen = resp.json()
    # Everything reached the app, unchanged (not a 502 "invalid request block size").
    assert seen["cookie"] == len(cookies)
    assert all(seen[f"x-pad-{i}"] == 2000 for i in range(4))
    assert sum(len(k) + len(v) for k, v in headers.items()) > 12_000


def test_single_oversized_header_line_is_a_4xx(server):
    status = status_of(server.raw(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"))
    assert 400 <= status < 500
    still_healthy(server)


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_is_400(server, request_bytes):
    assert status_of(server.raw(request_bytes)) == 400
    still_healthy(server)
