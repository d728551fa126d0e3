"""Every response, errors included, carries the browser hardening headers, and
the Server header names no version."""

import http.client

import pytest

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "strict-origin-when-cross-origin",
}


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving(env={"MAX_BODY_SIZE": "1k"})


def malformed(server):
    """nginx's own 400 for a request it cannot parse, as (status, headers)."""
    head = server.raw(b"GARBAGE\r\n\r\n").split(b"\r\n\r\n")[0].decode().split("\r\n")
    return int(head[0].split()[1]), dict(line.lower().split(": ", 1) for line in head[1:])


def answer(resp):
    return resp.status, resp.headers


# Who answers, and with what: the app, nginx's static files, nginx's errors.
CASES = {
    "app-200": (200, lambda s: answer(s.request("/"))),
    "static-200": (200, lambda s: answer(s.request("/static/proof.txt"))),
    "app-404": (404, lambda s: answer(s.request("/no-such-page"))),
    "static-404": (404, lambda s: answer(s.request("/static/no-such-file"))),
    "app-500": (500, lambda s: answer(s.request("/boom"))),
    "body-413": (413, lambda s: answer(s.request("/upload", method="POST", body=b"x" * 4096))),
    "malformed-400": (400, malformed),
}


@pytest.mark.parametrize("case", CASES)
def test_hardening_headers_on_every_response(server, case):
    expected_status, fetch = CASES[case]
    status, headers = fetch(server)
    assert status == expected_status
    for name, value in EXPECTED.items():
        assert headers.get(name, "").lower() == value.lower(), f"{name} on {case}: {headers}"
    # No version in the Server header.
    assert headers["server"] == "nginx"


def test_the_apps_own_values_win_without_duplicates(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/framed")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.getheaders().count(("X-Frame-Options", "DENY")) == 1
    assert [v for k, v in resp.getheaders() if k.lower() == "x-frame-options"] == ["DENY"]
    assert [v for k, v in resp.getheaders() if k.lower() == "referrer-policy"] == ["no-referrer"]
    # The one the app did not set still gets the default.
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
