"""The part of a request's body the app did not read is read here, before
uWSGI ends the answer, the outermost layer of the WSGI wrapper (serve.py).

An app may answer without reading the body: a 405 or 401 to an upload,
Flask's 413 past MAX_CONTENT_LENGTH, the wrapper's own 503s. uWSGI then
closed the connection while nginx was still sending the body, nginx's
write failed (EPIPE), and the client got 502 instead of the app's answer:
about half the time for a 100 KB form (measured), a 5xx any client could
provoke. nginx sends the whole body fast, from its own buffer, so reading
it costs the worker little: a 10 MB body is read in milliseconds.

An answer with a Content-Length (Flask's, unless it streams), a list, or a
file for uWSGI to send: the body is read before uWSGI sends any of it,
while nginx still waits for the answer. A stream's generator may still read
the body as it goes, so there the read waits for the stream's end. (Only
what the socket holds, some 256 KB, can be read that way: nginx closes its
copy of the body once the answer begins. And a generator given a
Content-Length finds the body read already. docs/your-app.md says to read
an upload in the view, then stream.)"""

from __future__ import annotations

from .spool import file_given

CHUNK = 1 << 16
# Set in the environ by a layer that found the client gone (serve.py's
# 499): nginx has closed the connection, and there is nothing to read.
CLIENT_GONE = "flaskbox.client_gone"


def rest_of_body(environ) -> None:
    """Reads what is left of the body; a client gone meanwhile ends it."""
    stream = environ["wsgi.input"]
    try:
        while stream.read(CHUNK):
            pass
    except (OSError, ValueError):
        pass  # nothing left to send the answer to


class Drained:
    """The app (the rest of the wrapper), whose answer ends only once the
    body has been read to its end."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("CONTENT_LENGTH", "") in ("", "0") or "wsgi.input" not in environ:
            return self.app(environ, start_response)
        made = Made(start_response)
        result = self.app(environ, made.start_response)
        if environ.get(CLIENT_GONE):
            return result
        if made.sized or isinstance(result, (list, tuple)) or file_given(environ):
            rest_of_body(environ)
            return result
        return ReadAtClose(result, environ)


class Made:
    """Whether the answer's start_response carried a Content-Length: a body
    made whole before it is sent."""

    def __init__(self, start_response):
        self.outer, self.sized = start_response, False

    def start_response(self, status, headers, exc_info=None):
        self.sized = any(name.lower() == "content-length" for name, _ in headers)
        return self.outer(status, headers, exc_info)


class ReadAtClose:
    """A stream's body, passed through; its close() reads what the app left
    of the request's body, then closes the stream."""

    def __init__(self, body, environ):
        self.body, self.environ = body, environ

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            rest_of_body(self.environ)
        finally:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
