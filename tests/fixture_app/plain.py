"""A plain WSGI callable, no framework: the image must serve it too."""

import os
import time


def application(environ, start_response):
    if environ["PATH_INFO"].startswith("/sleep/"):
        # A handler that waits (on a database, say), however the client asked.
        time.sleep(int(environ["PATH_INFO"].rpartition("/")[2]))
    if environ["PATH_INFO"] == "/stream":
        # A body with no Content-Length: the image frames it.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"plain line {i}\n".encode() for i in range(3))
    body = f"plain wsgi {os.environ.get('ECHO_TOKEN', 'unset')} {environ['PATH_INFO']}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
