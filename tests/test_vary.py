"""Vary is right: an answer that nginx may compress says so with
`Vary: Accept-Encoding`, its 304 too (the app's own revalidations as well as
static files'), whatever its length; no answer names a token twice, however
the app wrote its own Vary; an answer nginx never compresses adds nothing."""

import http.client

import pytest

from flaskbox.request import serve

GZIP = {"Accept-Encoding": "gzip"}


def head_lines(port: int, path: str, headers: dict | None = None) -> tuple[int, list[tuple[str, str]]]:
    """The status and every header line as sent (repeated lines kept)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheaders()
    finally:
        conn.close()


def vary_tokens(lines: list[tuple[str, str]]) -> list[str]:
    """Every Vary token of every Vary line, in order, as sent."""
    return [token.strip() for name, value in lines if name.lower() == "vary"
            for token in value.split(",") if token.strip()]


def header(lines, name: str) -> str | None:
    return next((value for key, value in lines if key.lower() == name), None)


@pytest.fixture(scope="module")
def served(module_containers):
    return module_containers.serving()


@pytest.mark.parametrize("extra", [{}, GZIP], ids=["identity", "gzip"])
def test_the_apps_own_304_carries_the_vary_of_its_200(served, extra):
    status, lines = head_lines(served.port, "/conditional", extra)
    assert status == 200 and vary_tokens(lines) == ["Accept-Encoding"], lines
    etag = header(lines, "etag")
    status, lines = head_lines(served.port, "/conditional", {**extra, "If-None-Match": etag})
    # Before: the app's 304 had no Vary at all.
    assert status == 304 and vary_tokens(lines) == ["Accept-Encoding"], lines


@pytest.mark.parametrize("extra", [{}, GZIP], ids=["identity", "gzip"])
def test_no_token_twice_however_the_app_wrote_its_vary(served, extra):
    # The app sent Vary: Accept-Encoding, then Vary: Cookie, accept-encoding.
    status, lines = head_lines(served.port, "/vary-own", extra)
    assert status == 200
    # Before: nginx's gzip_vary added a third Accept-Encoding beside the app's two.
    assert [token.lower() for token in vary_tokens(lines)] == ["accept-encoding", "cookie"], lines
    assert header(lines, "content-encoding") == ("gzip" if extra else None)


def test_a_small_answer_varies_as_a_large_one_does(served):
    # Under gzip_min_length nginx does not compress, but the same URL's
    # larger answer would be: the Vary is the same (static files' rule too).
    status, lines = head_lines(served.port, "/", GZIP)
    assert status == 200 and header(lines, "content-encoding") is None
    assert vary_tokens(lines) == ["Accept-Encoding"], lines


def test_an_answer_nginx_never_compresses_names_nothing_of_it(served):
    # A type outside gzip_types: the app's own tokens, once each.
    status, lines = head_lines(served.port, "/vary-own?type=image/png", GZIP)
    assert status == 200 and header(lines, "content-encoding") is None
    assert [token.lower() for token in vary_tokens(lines)] == ["accept-encoding", "cookie"], lines
    status, lines = head_lines(served.port, "/big/1")
    assert status == 200 and vary_tokens(lines) == [], lines


def test_a_static_file_and_its_304_vary_once(served):
    status, lines = head_lines(served.port, "/static/app.0123abcd.css", GZIP)
    assert status == 200 and vary_tokens(lines) == ["Accept-Encoding"], lines
    status, lines = head_lines(served.port, "/static/app.0123abcd.css",
                               {**GZIP, "If-None-Match": header(lines, "etag")})
    assert status == 304 and vary_tokens(lines) == ["Accept-Encoding"], lines


# --- the wrapper's rule, in process ----------------------------------------

@pytest.mark.parametrize("status, headers, compressed, expected", [
    ("200 OK", [("Content-Type", "text/html; charset=utf-8")], True, ["Accept-Encoding"]),
    ("200 OK", [("Content-Type", "application/json")], True, ["Accept-Encoding"]),
    ("404 NOT FOUND", [("Content-Type", "text/html")], True, ["Accept-Encoding"]),
    ("304 NOT MODIFIED", [("ETag", '"x"')], True, ["Accept-Encoding"]),
    ("304 NOT MODIFIED", [("Content-Type", "image/png")], True, []),
    ("200 OK", [("Content-Type", "image/png")], True, []),
    ("500 INTERNAL SERVER ERROR", [("Content-Type", "text/html")], True, []),
    ("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "br")], True, []),
    ("200 OK", [("Content-Type", "text/html")], False, []),
    ("200 OK", [("Content-Type", "text/html"), ("Vary", "Cookie")], True, ["Cookie, Accept-Encoding"]),
    ("200 OK", [("Content-Type", "text/html"), ("Vary", "cookie, Cookie"), ("Vary", "Origin")], False,
     ["cookie, Origin"]),
    ("200 OK", [("Content-Type", "text/html"), ("Vary", "*"), ("Vary", "Cookie")], True, ["*"]),
])
def test_the_wrappers_vary(status, headers, compressed, expected):
    sent = {}

    def app(environ, start_response):
        start_response(status, headers)
        return []

    def start_response(status, headers, exc_info=None):
        sent.update(headers=headers)

    serve.Serve(app, 5, compressed=compressed)({"REQUEST_METHOD": "HEAD", "REQUEST_URI": "/"}, start_response)
    settled = sent["headers"]
    assert [value for name, value in settled if name == "Vary"] == expected
    assert [pair for pair in settled if pair[0].lower() != "vary"] == \
        [pair for pair in headers if pair[0].lower() != "vary"]

