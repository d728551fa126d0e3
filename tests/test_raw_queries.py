"""A query string sent with raw bytes that are not UTF-8 (`GET /?name=\xff`,
unencoded, as no browser sends it but any client can) is not a 500: the
wrapper percent-encodes those bytes (flaskbox/request/query.py), so the app
reads them as it reads `%FF`. A raw query that is UTF-8 reaches the app as
the client sent it. In process through serve.Serve, then against the image's
own app, whose /api/hello reads request.args."""

import json

import pytest
from flask import Flask, request

from flaskbox.request import serve


def echo_args() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def args():
        return {"args": request.args.to_dict(), "raw": request.query_string.decode("latin-1")}

    return app


def served(query: str) -> tuple[str, dict]:
    """What the app answers through the wrapper for a QUERY_STRING as uWSGI
    hands it over (the raw bytes as latin-1)."""
    wrapper = serve.Serve(echo_args().wsgi_app, 5)
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": f"/?{query}", "PATH_INFO": "/", "QUERY_STRING": query,
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": None}
    statuses = []
    body = b"".join(wrapper(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0], json.loads(body)


@pytest.mark.parametrize(("raw", "args", "query"), [
    # Not UTF-8: each byte past ASCII is encoded, as %FF would have come.
    (b"name=\xff&x=a%20b+c", {"name": "%FF", "x": "a b c"}, "name=%FF&x=a%20b+c"),
    (b"name=\xc3(", {"name": "%C3("}, "name=%C3("),
    # UTF-8 as curl sends it: untouched.
    ("name=中文".encode(), {"name": "中文"}, "name=中文".encode().decode("latin-1")),
    (b"name=plain", {"name": "plain"}, "name=plain"),
])
def test_a_raw_query_reaches_the_app_readable(raw, args, query):
    status, answer = served(raw.decode("latin-1"))
    assert status == "200 OK"
    assert answer == {"args": args, "raw": query}


def test_a_client_cannot_get_a_500_with_raw_bytes_in_the_query(containers):
    c = containers.serving()
    for raw, name in [(b"\xff", "%FF"), (b"\xc3(", "%C3("), ("中文".encode(), "中文")]:
        request = b"GET /api/hello?name=" + raw + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        answer = c.raw(request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), (answer, c.logs())
        assert json.loads(body) == {"message": f"Hello, {name}!"}, answer
    assert "UnicodeDecodeError" not in c.logs()
