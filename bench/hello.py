"""A hello request as uWSGI hands it to a worker: the environ that
bench/profiling.py times and bench/wrapper_count.py counts the wrapper
(serve.Serve) around, so that both measure the same request."""

from __future__ import annotations

import time


def environ(sent: float | None = None, **more) -> dict:
    """GET / from nginx, its peer header dated `sent` (now, if None: a
    request that did not wait), with `more` keys added."""
    stamp = time.time() if sent is None else sent
    return {"REQUEST_METHOD": "GET", "REQUEST_URI": "/", "PATH_INFO": "/", "QUERY_STRING": "",
            "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "localhost", "wsgi.url_scheme": "http",
            "HTTP_X_FLASKBOX_PEER": f"127.0.0.1 50000 80 {stamp:.3f} 0 http", **more}
