"""A revalidation the app's ETag matches is answered 304, in process: the
weak comparison of If-None-Match (RFC 9110 13.1.2), and the wrapper as a
whole (serve.Serve) around small WSGI apps that compare byte for byte, as
WhiteNoise does: which answers become 304 and which stay the app's, what a
304 carries, and the app's body closed unread. Milliseconds each; the
same against real containers, WhiteNoise and Flask's send_file through
nginx's gzip: test_revalidation.py."""

import io

import pytest

from flaskbox.request import revalidation, serve


@pytest.mark.parametrize("sent, etag, carried", [
    ('"a"', '"a"', '"a"'),
    # nginx's gzip made the app's strong tag weak: the client holds W/"a".
    ('W/"a"', '"a"', 'W/"a"'),
    ('W/"a"', 'W/"a"', 'W/"a"'),
    ('"a"', 'W/"a"', 'W/"a"'),
    ('"x", W/"a" , "y"', '"a"', 'W/"a"'),
    # A cache that holds both forms: the app's own is the one refreshed.
    ('W/"a", "a"', '"a"', '"a"'),
    ('"6a893459-1205"', '"6a893459-1205"', '"6a893459-1205"'),
    ('"a,b"', '"a,b"', '"a,b"'),  # a comma inside a tag is the tag's
    ("*", '"a"', '"a"'),
    (" * ", 'W/"a"', 'W/"a"'),
])
def test_if_none_match_compares_weakly(sent, etag, carried):
    assert revalidation.matching(sent, etag) == carried


@pytest.mark.parametrize("sent, etag", [
    ('"b"', '"a"'),
    ('W/"b"', '"a"'),
    ('"a', '"a"'),
    ("a", "a"),           # the app's ETag is no entity-tag: nothing to compare
    ('"a"', "a"),
    ('w/"a"', '"b"'),
    ('"a,b"', '"a"'),     # not split at the comma
    ("", '"a"'),
    ('"a", *', '"b"'),    # "*" only alone
])
def test_anything_else_does_not_match(sent, etag):
    assert revalidation.matching(sent, etag) is None


BODY = b"body { color: red; }\n" * 100
MODIFIED = "Sat, 01 Feb 2025 10:00:00 GMT"


class Body:
    """An app's answer body that says whether it was read and closed."""

    def __init__(self, parts):
        self.parts, self.read, self.closed = parts, False, False

    def __iter__(self):
        self.read = True
        return iter(self.parts)

    def close(self):
        self.closed = True


def handler(status="200 OK", etag='"v1"', extra=()):
    """An app that answers every request with a stylesheet and its ETag,
    and compares If-None-Match byte for byte itself (WhiteNoise's way)."""
    answers = []

    def app(environ, start_response):
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            start_response("304 Not Modified", [("ETag", etag)])
            return []
        headers = [("Content-Type", "text/css; charset=utf-8"), ("Content-Length", str(len(BODY))),
                   ("Cache-Control", "max-age=60, public"), ("Last-Modified", MODIFIED),
                   ("Accept-Ranges", "bytes"), *extra]
        if etag is not None:
            headers.append(("ETag", etag))
        start_response(status, headers)
        answers.append(Body([BODY]))
        return answers[-1]

    app.answers = answers
    return app


def call(app, if_none_match=None, method="GET", compressed=True, **extra):
    """Serve(app) for one request, as uWSGI drives it: (status, headers, body)."""
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered.update(status=status, headers=headers)
        return lambda data: None

    environ = {"REQUEST_METHOD": method, "REQUEST_URI": "/static/theme.css", **extra}
    if if_none_match is not None:
        environ["HTTP_IF_NONE_MATCH"] = if_none_match
    result = serve.Serve(app, 5, compressed=compressed)(environ, start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    return answered["status"], answered["headers"], body


def test_a_weak_etag_sent_back_gets_304_with_the_200s_validators_and_no_body():
    app = handler()
    status, headers, body = call(app, 'W/"v1"')
    assert (status, body) == ("304 Not Modified", b"")
    # The body's own headers (type, length, ranges) gone, the rest kept;
    # the Vary of the 200, as nginx may compress it.
    assert dict(headers) == {"Cache-Control": "max-age=60, public", "Last-Modified": MODIFIED,
                             "ETag": 'W/"v1"', "Vary": "Accept-Encoding"}
    # The app's body was closed, never read.
    assert app.answers[0].closed and not app.answers[0].read


def test_the_strong_form_gets_304_with_the_apps_own_etag():
    status, headers, body = call(handler(etag='"v1"', extra=[("X-Other", "1")]), '"v0", "v1"')
    headers = dict(headers)
    assert (status, body, headers["ETag"], headers["X-Other"]) == ("304 Not Modified", b"", '"v1"', "1")


def test_a_head_revalidation_gets_304_too():
    assert call(handler(), 'W/"v1"', method="HEAD")[0] == "304 Not Modified"


def test_a_changed_file_comes_whole():
    app = handler(etag='"v2"')
    status, headers, body = call(app, 'W/"v1"')
    assert (status, body, dict(headers)["ETag"]) == ("200 OK", BODY, '"v2"')
    assert app.answers[0].closed


@pytest.mark.parametrize("case", ["no-store", "404", "206", "POST", "a body", "two etags", "no etag"])
def test_what_is_never_turned_into_304(case):
    app = handler(status={"404": "404 Not Found", "206": "206 Partial Content"}.get(case, "200 OK"),
                  etag=None if case == "no etag" else '"v1"',
                  extra={"no-store": [("Cache-Control", "no-store")],
                         "two etags": [("ETag", '"v1"')]}.get(case, []))
    extra = {"CONTENT_LENGTH": "4", "wsgi.input": io.BytesIO(b"abcd")} if case == "a body" else {}
    status, _, body = call(app, 'W/"v1"', method="POST" if case == "POST" else "GET", **extra)
    assert (status[:3], body) == ({"404": "404", "206": "206"}.get(case, "200"), BODY)


def test_a_file_from_wsgi_file_wrapper_is_closed_unsent():
    opened = io.BytesIO(BODY)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/css"), ("Content-Length", str(len(BODY))),
                                  ("ETag", '"f1"')])
        return environ["wsgi.file_wrapper"](opened)

    status, headers, body = call(app, 'W/"f1"', **{"wsgi.file_wrapper": FileBody})
    assert (status, body) == ("304 Not Modified", b"") and opened.closed


class FileBody:
    """What uWSGI's wsgi.file_wrapper gives: the file, closed with it."""

    def __init__(self, filelike, block_size=8192):
        self.filelike = filelike

    def __iter__(self):
        return iter([self.filelike.read()])

    def close(self):
        self.filelike.close()


def test_an_app_that_starts_its_answer_from_its_body_gets_304_too():
    def lazy(environ, start_response):
        # PEP 3333 lets start_response wait for the first part.
        start_response("200 OK", [("Content-Type", "text/css"), ("ETag", '"g1"')])
        yield BODY

    status, headers, body = call(lazy, 'W/"g1"')
    assert (status, body) == ("304 Not Modified", b"")


def test_a_request_without_if_none_match_never_asks(monkeypatch):
    def asked(*args):
        raise AssertionError("revalidation asked without If-None-Match")

    monkeypatch.setattr(revalidation, "unchanged", asked)
    status, headers, body = call(handler())
    assert (status, body, dict(headers)["ETag"]) == ("200 OK", BODY, '"v1"')
