"""What nginx tells the WSGI wrapper (serve.py) about each request, and the
answers the wrapper gives itself, without the app: the health check, and
503s for a request that waited too long or a stream with no slot left."""

from __future__ import annotations

import time

from .layout import RETRY_AFTER_SECONDS

HEALTH_BODY = b"ok\n"
# Why the wrapper answered as it did, for METRICS_PORT (metrics.py): nginx
# logs the header and never passes it on (nginx.conf, proxy_hide_header).
OUTCOME = "X-Flaskbox-Outcome"


def health(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HEALTH_BODY)))])
    return [HEALTH_BODY]


def wants_websocket(environ) -> bool:
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket"


def describe(environ) -> str:
    return f"{environ.get('REQUEST_METHOD')} {environ.get('REQUEST_URI')}"


def proxy_prelude(environ) -> float:
    """What nginx says of the request in X-Flaskbox-Peer (a client's copy is
    always replaced): the client's address and port and the server port, for
    the WSGI environ, since uWSGI sees only a unix socket; and when nginx
    passed the request on, so the seconds it waited for a worker (0 when
    not known)."""
    return take_peer(environ)[0]


def take_peer(environ) -> tuple[float, bool, bool]:
    """proxy_prelude's work, and the two flags last in X-Flaskbox-Peer: its
    seconds waited, whether the connection came from a trusted proxy, and
    whether it came over nginx's own HTTPS. The header is split once: this
    runs on every request."""
    peer = environ.pop("HTTP_X_FLASKBOX_PEER", None)
    if not peer:
        return 0.0, False, False
    fields = peer.split(" ")
    environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"] = fields[:3]
    trusted, tls = fields[4:5] == ["1"], fields[5:6] == ["https"]
    try:
        return max(time.time() - float(fields[3]), 0.0), trusted, tls
    except (IndexError, ValueError):
        return 0.0, trusted, tls


def waited_too_long(start_response) -> list[bytes]:
    """503 for a request that waited in the queue past REQUEST_TIMEOUT: its
    client has waited as long as any answer may take."""
    body = b"Service Unavailable: every worker was busy for too long, try again later\n"
    start_response("503 Service Unavailable",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                    ("Retry-After", str(RETRY_AFTER_SECONDS)), (OUTCOME, "queue_wait")])
    return [body]


def bad_request(start_response) -> list[bytes]:
    """400 for a request a trusted proxy named a bad host for (forwarded.py)."""
    body = b"Bad Request\n"
    start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def busy(start_response) -> list[bytes]:
    """503 for a stream or WebSocket past the process's stream slots."""
    body = b"Too many open streams, try again later\n"
    start_response("503 Service Unavailable",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                    ("Retry-After", str(RETRY_AFTER_SECONDS)), (OUTCOME, "stream_slots")])
    return [body]
