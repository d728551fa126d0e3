"""The WSGI wrapper uWSGI runs in production, per request: the user's app
plus what the HTTP hop from nginx needs (wsgi.py loads the app and wraps it
in Serve, once, in the master). Per request it:

- sets REMOTE_ADDR, REMOTE_PORT and SERVER_PORT from X-Flaskbox-Peer, the
  header nginx always sets (a client's copy is replaced), since uWSGI sees
  only a unix socket;
- believes the forwarded headers of a trusted proxy, the last line of each
  (forwarded.py), drops everyone else's, and answers 400 when a trusted
  proxy names a malformed host or one outside ALLOWED_HOSTS;
- answers the health check, GET /-/healthy exactly, without the app;
- skips a request whose client has already gone (nginx closed the
  connection while it waited for a worker), instead of running it for
  nobody;
- frames a response without a Content-Length as chunked, so that nginx can
  tell a complete stream from one cut short (a killed worker, an exception
  mid-stream) and the client sees the difference, and its access log too
  (the last chunk pads the body to a length nginx checks), and marks it
  X-Accel-Buffering: no (unless the app set that header), so that nginx
  passes each chunk on at once; text/event-stream is always marked;
- hands a WebSocket upgrade its connection (environ["werkzeug.socket"]);
- enforces REQUEST_TIMEOUT per request where uWSGI's per-process harakiri
  cannot: sync workers, whose threads share a process (guards.Watchdog:
  a request that waited in the queue that long gets 503, a handler past it
  504), and gevent, where it bounds the handler, not the stream it returns
  (streams.py has theirs);
- lets nginx spool a large response to disk within RESPONSE_SPACE (Spool),
  and hands a file from the environ's wsgi.file_wrapper back to uWSGI untouched, which
  sends it from an offload thread: either way the worker is free at once,
  however slow the client.
"""

from __future__ import annotations

import select
import sys
import time
import traceback

from . import forwarded, guards, streams, unread
from .framing import FRAMED, Reply, frames, scan, unbuffered_for
from .log import error, log
from .prelude import bad_request, busy, describe, health, take_peer, waited_too_long, wants_websocket
from .spool import FileResponses, Spool, Spooled, close_body

try:  # only inside uWSGI
    import uwsgi
except ImportError:  # unit tests
    uwsgi = None

def worker_id() -> int:
    return uwsgi.worker_id() if uwsgi is not None else 0


# A request that waited less than this for a worker is run without asking
# whether its client is still there: it can hardly have left yet, and the
# question is a system call, which hands Python's lock to another of the
# process's threads and back (docs/BENCHMARKS.md, "The wrapper").
GONE_AFTER = 0.05


def client_gone() -> bool:
    """True when nginx has already closed this request's connection: its
    client gave up (or nginx's timeout passed) while it waited in the queue."""
    if uwsgi is None:
        return False
    poller = select.poll()
    poller.register(uwsgi.connection_fd(), select.POLLRDHUP)
    return bool(poller.poll(0))


class RequestTimeout(BaseException):
    """gevent: raised into a handler past REQUEST_TIMEOUT. A BaseException,
    so that the app's `except Exception` lets it through."""


class Refusals:
    """A log line for refused streams at most every 10 s, with their count."""

    def __init__(self, slots: int):
        self.slots, self.count, self.logged = slots, 0, 0.0

    def note(self, what: str) -> None:
        self.count += 1
        if time.monotonic() - self.logged >= 10:
            log(f"{what}: refused with 503, {self.count} so far: all {self.slots} stream slots of this "
                "process are open (WORKER_CONNECTIONS less a tenth kept for ordinary requests)")
            self.logged = time.monotonic()


class Serve:
    def __init__(self, app, timeout: float, gevent_limits: streams.Limits | None = None,
                 stream_slots: int = 0, spool: Spool | None = None, allowed_hosts: tuple[str, ...] = (),
                 memory_cap: int = 0):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.timeout = timeout
        self.limits = gevent_limits
        # gevent: streams and WebSockets beyond this get 503 (layout.stream_slots).
        self.stream_slots = stream_slots
        self.refusals = Refusals(stream_slots)
        self.watchdog = guards.Watchdog(timeout, memory_cap) if gevent_limits is None else None
        self.loop_watch = guards.LoopWatch(timeout, memory_cap) if gevent_limits is not None else None
        self.spool = spool

    def __call__(self, environ, start_response):
        # The client, the time in the queue, the trust flag and the
        # connection's own scheme, from X-Flaskbox-Peer.
        waited, trusted, tls = take_peer(environ)
        if environ.get("REQUEST_URI") == "/-/healthy":
            return health(environ, start_response)
        refused = forwarded.apply(environ, trusted, self.allowed_hosts, tls)
        if refused:
            log(f"refused {describe(environ)} with 400: {refused}")
            return bad_request(start_response)
        if waited >= GONE_AFTER and client_gone():
            log(f"skipped {describe(environ)}: its client left while it waited for a worker")
            environ[unread.CLIENT_GONE] = True  # nobody sends the rest of its body
            start_response("499 Client Closed Request", [("Content-Length", "0")])
            return []
        if self.watchdog is not None and waited >= self.timeout:
            log(f"refused {describe(environ)} with 503: it waited {waited:.1f} s for a worker, past "
                f"REQUEST_TIMEOUT ({self.timeout:g} s)")
            return waited_too_long(start_response)
        if self.loop_watch is not None:
            self.loop_watch.start_once()
            streams.install_stop_handler_once(gevent_mode=True)
        websocket = None
        upgrade = wants_websocket(environ)
        if upgrade and self.full():
            self.refusals.note(describe(environ))
            return busy(start_response)
        if upgrade and uwsgi is not None:
            websocket = streams.WebSocket(uwsgi.connection_fd(), describe(environ))
            environ["werkzeug.socket"] = websocket
            streams.OPEN.websockets[websocket.fd] = websocket
            streams.OPEN.publish()
            if self.limits is not None:
                self.limits.bound_websocket(websocket)
        try:
            return self._respond(environ, start_response, websocket, waited)
        except BaseException:
            if websocket is not None:
                self._release(websocket)
            raise

    def _respond(self, environ, start_response, websocket, waited: float):
        reply = Reply()
        files = FileResponses(environ)
        watched = None
        if self.watchdog is not None:
            fd = uwsgi.connection_fd() if uwsgi is not None else None
            watched = self.watchdog.begin(environ, fd, waited)
            watched.enter()
            if websocket is not None:
                # An Upgrade header is a client's claim: REQUEST_TIMEOUT
                # watches the request until the app takes the connection.
                websocket.on_take = lambda: self._let_go(watched)
        try:
            if websocket is None:
                result = self._call_app(environ, self._start_response(environ, start_response, reply, files))
            else:
                # Once it has taken the connection, the app's handler runs
                # for the WebSocket's whole life: not a request
                # REQUEST_TIMEOUT could bound (gevent: the stream limits do;
                # sync: nginx closes one silent for longer).
                result = self.app(environ, self._start_response(environ, start_response, reply, files,
                                                                websocket))
        except Exception:
            if watched is not None:
                watched.leave()
                self.watchdog.end()
            # Past a 504 the watchdog sent, or on a connection the app took
            # for its WebSocket, no answer of ours may follow.
            answered_504 = watched is not None and not watched.claim("app")
            if answered_504 or (websocket is not None and websocket.taken):
                raise
            if websocket is not None:
                self._release(websocket)
            return passed_on(environ, start_response)
        except BaseException:
            if watched is not None:
                watched.leave()
                self.watchdog.end()
            raise
        if watched is not None:
            watched.leave()
        if websocket is not None and not websocket.taken:
            # Asked for an upgrade, answered as any request: that answer
            # goes out like any other (framed, spooled, logged).
            self._release(websocket)
            websocket = None
        if websocket is not None:
            return self._after_websocket(result, websocket, start_response)
        if reply.refused is not None:
            close_body(result)
            if watched is not None:
                self.watchdog.end()
            return reply.refused
        return self._body(environ, result, reply, files, watched)

    def _start_response(self, environ, start_response, reply: Reply, files: FileResponses, websocket=None):
        """The app's start_response: decides the framing and buffering of
        its response (into `reply`), or refuses a stream with no slot."""
        method = environ["REQUEST_METHOD"]

        def framing_start_response(status, headers, exc_info=None):
            if websocket is not None and websocket.taken:
                # The app answered on the connection itself (101, then the
                # WebSocket); what it passes here must not follow.
                reply.chunked = False
                return lambda data: None
            sized, reply.event_stream, accel, length = scan(headers)
            reply.chunked = frames(status, method, sized)
            if reply.chunked and self.full():
                # A stream with no slot left: 503 instead, before any of it is sent.
                reply.chunked = False
                reply.refused = busy(start_response)
                self.refusals.note(describe(environ))
                return lambda data: None
            extra = (unbuffered_for(accel, reply.chunked, reply.event_stream)
                     or self._spooling(length, accel is not None, files, reply))
            if reply.chunked:
                extra += [("Transfer-Encoding", "chunked"), FRAMED]
            write = start_response(status, [*headers, *extra], exc_info)
            if not reply.chunked:
                return write
            return lambda data: write(reply.frame(data)) if data else None

        return framing_start_response

    def _body(self, environ, result, reply: Reply, files: FileResponses, watched):
        """The response's body as uWSGI is to send it."""
        if reply.spooled:
            worker, spooled = worker_id(), reply.spooled
            result = Spooled(result, lambda: self.spool.written(spooled, worker))
        if watched is not None and not reply.chunked and (
                files.holds(result) or isinstance(result, (list, tuple))):
            # All of it is made: what is left is uWSGI's to send (a file,
            # from an offload thread), at the client's pace. Not if it is to
            # be framed (no Content-Length: a bare WSGI app's list, as
            # prometheus_client and engine.io return): chunked was promised.
            self.watchdog.end()
            if not watched.claim("app"):
                close_body(result)
                return []  # answered 504 already
            return result
        if reply.chunked is False:
            body = result  # a Content-Length, nothing to add
        else:
            body = streams.flow(result, describe(environ), self.limits, reply)
        if watched is None:
            return body
        return self.watchdog.watch(body, watched)

    def _spooling(self, length: str | None, chose: bool, files: FileResponses, reply: Reply) -> list:
        """How nginx is to take a response with a Content-Length: a file
        (sendfile from an offload thread) and a body the disk budget cannot
        take pass straight through (X-Accel-Buffering: no), at the client's
        pace; any other is spooled to RUNTIME_DIR if it is larger than
        nginx's memory buffers, so that its worker is free at once; what it
        takes is noted in the reply."""
        if files.given:
            return [("X-Accel-Buffering", "no")]
        if self.spool is None or reply.spooled or chose:
            return []  # the app chose for itself (or this is start_response again, with exc_info)
        if length is not None and length.isdigit():
            size = int(length)
            if not self.spool.admits(size, worker_id()):
                return [("X-Accel-Buffering", "no")]
            if size > self.spool.MEMORY:
                reply.spooled = size
        return []

    def full(self) -> bool:
        return bool(self.stream_slots) and streams.OPEN.long_lived() >= self.stream_slots

    def _call_app(self, environ, start_response):
        if self.limits is None:
            return self.app(environ, start_response)
        import gevent
        try:
            with gevent.Timeout(self.timeout, RequestTimeout):
                result = self.app(environ, start_response)
        except RequestTimeout:
            log(f"{describe(environ)} ran past REQUEST_TIMEOUT ({self.timeout:g} s): cancelled, answered 504")
            body = b"Gateway Timeout\n"
        else:
            return result
        start_response("504 Gateway Timeout",
                       [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                        ("X-Flaskbox-Outcome", "timeout")])
        return [body]

    def _after_websocket(self, result, websocket, start_response):
        """The app's WebSocket has ended (flask-sock returns once its
        handler does)."""
        close = getattr(result, "close", None)
        if close is not None:
            close()
        self._release(websocket)
        if not websocket.native:
            # uWSGI still holds the status of a request that never called
            # start_response (500, in its log). Give it the real one; the
            # headers it then writes meet a shut-down connection.
            start_response("101 Switching Protocols", [])
        return []

    def _let_go(self, watched) -> None:
        """The app takes its WebSocket's connection: the watchdog lets the
        request go, unless it has answered 504 on it already."""
        if not watched.claim("app"):
            raise BrokenPipeError(f"{watched.what}: answered 504 already, past REQUEST_TIMEOUT")
        watched.leave()
        self.watchdog.end()

    def _release(self, websocket):
        streams.OPEN.websockets.pop(websocket.fd, None)
        streams.OPEN.publish()
        websocket.release()
        if websocket.timer is not None:
            websocket.timer.kill(block=False)


def passed_on(environ, start_response) -> list[bytes]:
    """An exception the app's call raised instead of answering (Flask does
    with app.debug, TESTING or PROPAGATE_EXCEPTIONS on; a bare WSGI app may): its
    traceback goes to the log and the client gets a plain 500. Left to
    uWSGI, it ended the connection with nothing sent, which nginx answered
    502, as if the server were down."""
    kind = sys.exc_info()[0]
    traceback.print_exc()
    error(f"{describe(environ)}: the app passed {kind.__name__ if kind else 'an exception'} on (Flask does "
          "with app.debug, TESTING or PROPAGATE_EXCEPTIONS on): answered 500")
    body = b"Internal Server Error\n"
    # Without exc_info: uWSGI raises it again even when nothing was sent,
    # and nothing has been (uWSGI sends the header with the first byte of
    # the body, and the app returned none).
    start_response("500 Internal Server Error",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
