"""The answers the WSGI wrapper gives itself, without the app (serve.py,
request.py, guards.py), the watchdog's on a request's connection, and the
one log line for refusals.

Each answer is plain text with a Content-Length, made once at import: a
status, its headers and its body. X-Flaskbox-Outcome says why, for
METRICS_PORT (metrics.py); nginx logs it and never passes it on
(nginx.conf, proxy_hide_header).
"""

from __future__ import annotations

import os
import socket
import time

from ..layout import RETRY_AFTER_SECONDS
from ..log import log

OUTCOME = "X-Flaskbox-Outcome"


class Answer:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: str, text: str, outcome: str = "", retry: bool = False):
        self.status = status
        self.body = text.encode()
        self.headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(self.body)))]
        if retry:
            # When to come back: every refusal of ours is a moment's.
            self.headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
        if outcome:
            self.headers.append((OUTCOME, outcome))

    def with_header(self, name: str, value: str) -> Answer:
        answer = Answer.__new__(Answer)
        answer.status, answer.body, answer.headers = self.status, self.body, [*self.headers, (name, value)]
        return answer

    def raw(self) -> bytes:
        """The whole answer as HTTP/1.1 bytes, for a connection the
        watchdog answers on itself, then closes."""
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        return f"HTTP/1.1 {self.status}\r\n{head}Connection: close\r\n\r\n".encode() + self.body


HEALTHY = Answer("200 OK", "ok\n")
BAD_REQUEST = Answer("400 Bad Request", "Bad Request\n")
# nginx closed the connection: nothing reaches anyone, uWSGI logs the status.
CLIENT_GONE = Answer("499 Client Closed Request", "")
PASSED_ON = Answer("500 Internal Server Error", "Internal Server Error\n")
# A request that waited in the queue past REQUEST_TIMEOUT: its client has
# waited as long as any answer may take.
QUEUE_WAIT = Answer("503 Service Unavailable",
                    "Service Unavailable: every worker was busy for too long, try again later\n",
                    "queue_wait", retry=True)
# gevent: a stream or WebSocket past the process's stream slots.
STREAM_SLOTS = Answer("503 Service Unavailable", "Too many open streams, try again later\n",
                      "stream_slots", retry=True)
# sync: an answer at its client's pace past CLIENT_STREAM_SHARE.
STREAM_SHARE = Answer("503 Service Unavailable", "Too many open streams from your address, try again later\n",
                      "stream_share", retry=True)
# gevent: a handler cancelled past REQUEST_TIMEOUT.
TIMED_OUT = Answer("504 Gateway Timeout", "Gateway Timeout\n", "timeout")


def gateway_timeout(timeout: float) -> Answer:
    """sync: what the watchdog writes on a stuck request's connection."""
    text = f"Gateway Timeout: the handler ran past REQUEST_TIMEOUT ({timeout:g} s)\n"
    return Answer("504 Gateway Timeout", text, "timeout")


class Refusals:
    """Refusals of one kind in this process (or requests skipped: `done`):
    a log line at most every 10 s, with their count so far. A client past a
    limit retries at once, and under overload a line each would bury the
    log when it matters most."""

    def __init__(self, why: str, done: str = "refused with 503"):
        self.why, self.done = why, done
        self.count, self.logged = 0, 0.0

    def note(self, what: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged >= 10:
            self.logged = now
            log(f"{what}: {self.done}, {self.count} so far in pid {os.getpid()}: {self.why}")


def connection(fd: int | None) -> socket.socket | None:
    """A request's connection, as a copy of its descriptor: the descriptor
    stays uWSGI's (closed, its number could be another client's next), and
    the copy stays this connection's however soon uWSGI closes it."""
    try:
        return None if fd is None else socket.socket(fileno=os.dup(fd))
    except OSError:
        return None


def answer_gateway_timeout(conn: socket.socket, timeout: float) -> None:
    """A whole 504 on the request's connection (nothing of the app's answer
    has been sent: the watchdog claimed it first), then a shutdown, so that
    whatever the stuck handler writes later goes nowhere."""
    try:
        conn.settimeout(1)
        conn.sendall(gateway_timeout(timeout).raw())
    except OSError:
        pass  # nginx has already given up on it
    shut_down(conn)


def shut_down(conn: socket.socket) -> None:
    """Ends a request's connection for both sides."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
