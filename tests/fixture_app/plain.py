"""A plain WSGI callable, no framework: the image must serve it too, and
every body PEP 3333 allows, with no Content-Length as bare WSGI apps
(prometheus_client's, engine.io's) send them."""

import os
import time
from wsgiref.util import FileWrapper

BODIES = {
    # A list, a tuple, an empty list, one of 3 MB, write() then a list.
    "/list": lambda write: [b"plain ", b"list\n"],
    "/tuple": lambda write: (b"plain ", b"tuple\n"),
    "/empty": lambda write: [],
    "/big-list": lambda write: [b"%07d\n" % i for i in range(375000)],
    "/write-then-list": lambda write: write(b"written, ") or [b"then listed\n"],
}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/sleep/"):
        # A handler that waits (on a database, say), however the client asked.
        time.sleep(int(path.rpartition("/")[2]))
    if path == "/stream":
        # A body with no Content-Length: the image frames it.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"plain line {i}\n".encode() for i in range(3))
    if path in BODIES:
        return BODIES[path](start_response("200 OK", [("Content-Type", "text/plain")]))
    if path == "/file":
        # wsgi.file_wrapper with no Content-Length (optional: Werkzeug's dev
        # server has none, and PEP 3333 says to fall back then).
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ.get("wsgi.file_wrapper", FileWrapper)(open(__file__, "rb"), 4096)
    body = f"plain wsgi {os.environ.get('ECHO_TOKEN', 'unset')} {path}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
