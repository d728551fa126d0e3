"""The WSGI wrapper uWSGI runs in production: the user's app plus what the
HTTP hop from nginx needs, as one layer (wsgi.py makes it once, in the
master). Each request is one request.Request, whose decisions are made
once. Serve, per request:

- takes what nginx says of it (X-Flaskbox-Peer: the client, the time it
  was passed on, the trust flag, the scheme);
- answers the health check, GET /-/healthy exactly, without the app;
- percent-encodes a raw query's bytes that are not UTF-8 (query.py), which
  Werkzeug would answer 500;
- believes a trusted proxy's forwarded headers, the last line of each
  (forwarded.py), drops everyone else's, and answers 400 to a trusted
  proxy's malformed host or one outside ALLOWED_HOSTS;
- skips a request whose client left while it waited for a worker;
- sets URL_PREFIX or a trusted proxy's X-Forwarded-Prefix as SCRIPT_NAME (prefix.py);
- hands a WebSocket upgrade its connection (environ["werkzeug.socket"]);
- runs the app under REQUEST_TIMEOUT, where uWSGI's per-process harakiri
  cannot: sync workers, whose threads share a process (guards.Watchdog: a
  request that waited in the queue that long gets 503, a handler past it
  504), and gevent (GeventServe), where it bounds the handler, not the
  stream it returns (streams.py has theirs);
- answers 500 for an exception the app passed on.

The usual request (no stream, no WebSocket, no upload, no prefix) goes
straight through __call__ and run(); each rarer case branches off where
it begins, and whatever way it leaves, what it held goes back (body.release).
"""

from __future__ import annotations

import select
import sys
import traceback
from functools import partial
from time import monotonic

from ..log import error, log
from . import forwarded, guards, passed_on, prefix, stacks, stopping, streams, unlimited
from .answers import (
    BAD_REQUEST,
    CLIENT_GONE,
    HEALTHY,
    PASSED_ON,
    QUEUE_WAIT,
    STREAM_SHARE,
    STREAM_SLOTS,
    TIMED_OUT,
    Refusals,
)
from .body import close, gevent_wrapper, release, sync_wrapper
from .deadline import Times
from .forwarded import UNTRUSTED
from .query import readable
from .request import Request
from .websocket import WebSocket

# A request that waited less than this for a worker is run without asking
# whether its client is still there: it can hardly have left yet, and the
# question is a system call, which hands Python's lock to another of the
# process's threads and back (docs/BENCHMARKS.md, "What the wrapper costs in a worker").
GONE_AFTER = 0.05
# Requests whose client left while they waited: counted, a line a while
# (nginx's access log has each, as 499, and METRICS_PORT counts them so).
CLIENTS_GONE = Refusals("its client left while it waited for a worker (nginx logs each as 499)", "skipped")


def client_gone(fd: int | None) -> bool:
    """True when nginx has already closed this request's connection: its
    client gave up (or nginx's timeout passed) while it waited in the queue."""
    if fd is None:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)
    return bool(poller.poll(0))


def no_connection() -> None:
    """Outside uWSGI (tests): no connection to write on."""
    return None


def worker_zero() -> int:
    return 0


class RequestTimeout(BaseException):
    """gevent: raised into a handler past REQUEST_TIMEOUT. A BaseException,
    so that the app's `except Exception` lets it through."""


class Serve:
    """sync workers (WORKER_CLASS=sync, the default)."""

    limits = None  # gevent's stream limits (GeventServe); None: sync, under the watchdog (run)
    file_wrapper = noted_wrapper = None  # uWSGI's wsgi.file_wrapper, and the app's (noting)

    def __init__(self, app, timeout: float, *, spool=None, share=None, allowed_hosts: tuple[str, ...] = (),
                 url_prefix: str = "", compressed: bool = False, memory_cap: int = 0, watchdog=None,
                 gate=None, connection_fd=no_connection, worker_id=worker_zero):
        self.app = app
        self.timeout = timeout
        self.spool = spool
        self.share = share
        self.allowed_hosts = allowed_hosts
        self.url_prefix = url_prefix
        self.compressed = compressed
        # The health check's answer: text nginx may compress varies as any.
        self.healthy = HEALTHY.with_header("Vary", "Accept-Encoding") if compressed else HEALTHY
        self.connection_fd = connection_fd
        self.worker_id = worker_id
        self.watchdog = watchdog or self.guard(timeout, memory_cap)
        # sync: a request that waited this long in the queue is refused.
        self.queue_limit = timeout
        # How many requests run at once, and how long each kind takes
        # (admission.py; wsgi.py puts the gate here with ADAPTIVE_THREADS).
        self.gate = gate or unlimited.Timed(Times(timeout))

    def guard(self, timeout: float, memory_cap: int):
        return guards.Watchdog(timeout, memory_cap)

    def noting(self, request: Request, wrapper):
        """The wsgi.file_wrapper the app is given for uWSGI's `wrapper`
        (body.py): sync's, one a worker, made at its first request."""
        self.noted_wrapper = noted = sync_wrapper(wrapper, self.watchdog.running)
        self.file_wrapper = wrapper  # the second: a thread that finds it finds the first too
        return noted

    def __call__(self, environ, start_response):
        request = Request(self, environ, start_response)
        if environ.get("REQUEST_URI") == "/-/healthy":
            return request.answer(self.healthy)
        query = environ.get("QUERY_STRING")
        if query and not query.isascii():
            environ["QUERY_STRING"] = readable(query)
        if request.trusted or not UNTRUSTED.isdisjoint(environ):
            refused = self.forwarded(request)
            if refused is not None:
                return refused
        else:
            if request.tls:  # uWSGI says http
                environ["wsgi.url_scheme"] = "https"
            if self.url_prefix:
                prefix.apply(environ, self.url_prefix, False)
        if request.waited >= GONE_AFTER:
            answer = self.waited_long(request)
            if answer is not None:
                return answer
        if "HTTP_UPGRADE" in environ and environ["HTTP_UPGRADE"].lower() == "websocket":
            return self.upgrade(request)
        return self.run(request)

    def forwarded(self, request: Request):
        """A request from a trusted proxy, or with forwarded headers from
        anyone else (uWSGI takes its scheme from X-Forwarded-Proto): what may
        be believed of them, or the 400."""
        environ = request.environ
        refused = forwarded.apply(environ, request.trusted, self.allowed_hosts, request.tls)
        if refused:
            log(f"refused {request.what} with 400: {refused}")
            return request.answer(BAD_REQUEST)
        if self.url_prefix or "HTTP_X_FORWARDED_PREFIX" in environ:
            prefix.apply(environ, self.url_prefix, True)
        return None

    def run(self, request: Request):
        """The app, under REQUEST_TIMEOUT, and what becomes of its answer:
        handed to uWSGI (Request.finish), or a 504 or a 500 instead."""
        try:
            if self.limits is None:
                # sync: a place in ADAPTIVE_THREADS' limit first; then under
                # the watchdog, whose clock runs while the app works on the
                # request (and ran while it waited in the queue, and for a place).
                if not self.gate.take(request):  # no place at once (the usual request has one)
                    let_in = self.let_in(request)
                    if not let_in:
                        self.drop(request)  # a WebSocket's share of threads and its connection, back
                        return [] if let_in is None else request.answer(QUEUE_WAIT)
                request.watch(self.watchdog, self.connection_fd())
                result = self.app(request.environ, request.start_response)
            else:
                result = self.bounded(request)
            if request.websocket is None:
                # The clock runs on: finish() makes the answer's first part
                # under it, and what raises there (a generator, the app's close()) is the app's.
                return request.finish(result)
        except RequestTimeout as timeout:
            # Its traceback is the stack the handler waited on when the time ran out.
            stacks.say(f"{stacks.named(request)} ran past REQUEST_TIMEOUT ({self.timeout:g} s): cancelled, "
                       "answered 504", stacks.unwound(timeout.__traceback__), stacks.waits(request.environ))
            try:
                return request.answer(TIMED_OUT)
            finally:
                self.drop(request)
        except Exception:
            self.gate.leave(request)
            request.stop_clock()
            request.unwatch()
            # Past a 504 the watchdog sent, or on a connection the app took
            # for its WebSocket, no answer of ours may follow.
            if not request.claim("app") or request.taken:
                self.drop(request)
                raise
            return self.passed_on(request)
        except BaseException:
            self.gate.leave(request)
            request.stop_clock()
            request.unwatch()
            self.drop(request)
            raise
        request.stop_clock()
        return self.after_upgrade(request, result)

    def let_in(self, request: Request) -> bool | None:
        """A place in ADAPTIVE_THREADS' limit (admission.py), when none was
        free at once: waited for as long as the answer could still start
        within REQUEST_TIMEOUT, taking its kind's usual time; the wait
        counts as the queue's. False: refused; None: its client left
        meanwhile (skipped, answered)."""
        gate = self.gate
        began = monotonic()
        # It waits for a place while its kind's usual time still fits (not
        # its spreads too: refused at once, clients that retry at once made
        # a flood of refusals), and is judged with them once it has one.
        left = self.queue_limit - request.waited - gate.times.usual(request.times, began)
        if not gate.wait(request, left):  # (take() found none free)
            gate.times.refusals.note(request.what)
            return False
        here = request.entered - began
        request.waited += here
        if here < GONE_AFTER:
            return True
        if client_gone(self.connection_fd()):
            # Its client left while it waited for a place: run for nobody, it would hold one.
            gate.forgo(request)
            CLIENTS_GONE.note(request.what)
            request.respond(CLIENT_GONE.status, CLIENT_GONE.headers)
            return None
        if gate.too_late(request, request.entered):
            # Its kind's usual time, as the worker knows it now (a new
            # worker's first requests waited knowing none), no longer fits.
            gate.forgo(request)
            gate.times.refusals.note(request.what)
            return False
        return True

    def waited_long(self, request: Request):
        """A request that waited for a worker: its client may have left, and
        (sync) it may have waited as long as any answer may take."""
        if client_gone(self.connection_fd()):
            CLIENTS_GONE.note(request.what)
            # Nobody sends the rest of its body: nothing to read.
            request.respond(CLIENT_GONE.status, CLIENT_GONE.headers)
            return []
        if request.waited >= self.queue_limit:
            log(f"refused {request.what} with 503: it waited {request.waited:.1f} s for a worker, past "
                f"REQUEST_TIMEOUT ({self.timeout:g} s)")
            return request.answer(QUEUE_WAIT)
        gate = self.gate
        if gate.times is not None:
            request.times = gate.times.at_entry(request.environ)
            if gate.too_late(request, monotonic()):
                gate.times.refusals.note(request.what)
                return request.answer(QUEUE_WAIT)
        return None

    def admit(self, request: Request, chunked: bool, unbuffered: bool, stream: bool):
        """An answer at its client's pace (or a WebSocket) holds its thread
        until the client has it: one of the client's share of threads, or
        the 503 to send instead. A file does not: uWSGI's offload thread
        sends it."""
        share = self.share
        if share is None or not unbuffered or request.files:
            return None
        slot = share.take(request.environ.get("REMOTE_ADDR", ""), self.worker_id())
        if slot is None:
            return STREAM_SHARE
        request.slot, request.stalls = slot, stream
        return None

    def upgrade(self, request: Request):
        """A request to upgrade to a WebSocket: the connection, for the app."""
        request.rare = True
        refusal = self.admit(request, True, True, False)
        if refusal is not None:
            return request.answer(refusal)
        fd = self.connection_fd()
        if fd is not None:
            websocket = request.websocket = WebSocket(fd, request.what)
            request.environ["werkzeug.socket"] = websocket
            streams.OPEN.websockets[fd] = websocket
            streams.OPEN.publish()
            self.bound(websocket, request)
        return self.run(request)

    def bound(self, websocket, request: Request) -> None:
        # An Upgrade header is a client's claim: REQUEST_TIMEOUT watches the
        # request until the app takes the connection. From then on the
        # handler runs for the WebSocket's whole life, which REQUEST_TIMEOUT
        # does not bound: nginx closes one silent for longer.
        websocket.on_take = request.let_go

    def after_upgrade(self, request: Request, result):
        self.gate.leave(request)  # (let go already, if the app took the connection)
        websocket = request.websocket
        if not websocket.taken:
            # Asked for an upgrade, answered as any request: that answer
            # goes out like any other (framed, spooled, logged).
            websocket.done()
            request.websocket = None
            return request.finish(result)
        # The app's WebSocket has ended (flask-sock returns once its handler does).
        try:
            close(result)
        finally:
            websocket.done()
            release(request)
        if not websocket.native:
            # uWSGI still holds the status of a request that never called
            # start_response (500, in its log). Give it the real one; the
            # headers it then writes meet a shut-down connection.
            request.respond("101 Switching Protocols", [])
        return []

    def drop(self, request: Request) -> None:
        """An exception passes up to uWSGI (or a 504): what the request held goes back."""
        if request.websocket is not None:
            request.websocket.done()
        release(request)

    def passed_on(self, request: Request) -> list[bytes]:
        """An exception the app's call raised instead of answering (why:
        passed_on.py): its traceback to the log, and a plain 500 to the client,
        not the 502 nginx made of a connection uWSGI ended with nothing sent.
        Called while the exception is handled."""
        kind, _, tb = sys.exc_info()
        traceback.print_exc()
        why = f"{request.what}: {passed_on.why(self.app, kind.__name__ if kind else 'an exception', tb)}"
        self.drop(request)
        request.websocket = None
        try:  # (without exc_info: uWSGI would raise it again, though nothing was sent)
            answer = request.answer(PASSED_ON)
        except OSError:  # something was: the app wrote with write() before it raised
            error(f"{why}, after its answer had begun: cut (nginx logs it so)")
            return []
        error(f"{why}: answered 500")
        return answer


class GeventServe(Serve):
    """WORKER_CLASS=gevent: one process, many greenlets. REQUEST_TIMEOUT
    bounds each handler (gevent.Timeout); a process whose loop is blocked
    is replaced (guards.LoopWatch); streams and WebSockets are bounded by
    STREAM_IDLE_TIMEOUT and STREAM_MAX_DURATION (streams.Limits), and beyond
    the process's stream slots get 503."""

    def __init__(self, app, timeout: float, limits: streams.Limits, stream_slots: int, **kwargs):
        super().__init__(app, timeout, gate=unlimited.Untimed, **kwargs)
        # Every request is taken at once: a wait is not a queue's.
        self.queue_limit = float("inf")
        self.limits = limits
        # Streams and WebSockets beyond this get 503 (layout.stream_slots).
        self.stream_slots = stream_slots
        self.refusals = Refusals(f"all {stream_slots} stream slots of this process are open "
                                 "(WORKER_CONNECTIONS less a tenth kept for ordinary requests)")

    def guard(self, timeout: float, memory_cap: int):
        return guards.LoopWatch(timeout, memory_cap, partial(stacks.serving, Serve.run.__code__))

    def noting(self, request: Request, wrapper):
        return gevent_wrapper(wrapper, request)

    def __call__(self, environ, start_response):
        # Once per process, from its first request (the loop runs by then).
        self.watchdog.start_once()
        stopping.install_handler_once(gevent_mode=True)
        return Serve.__call__(self, environ, start_response)

    def bounded(self, request: Request):
        """The app's call, for run(), under gevent.Timeout: past
        REQUEST_TIMEOUT it is cancelled (RequestTimeout: run() answers 504)."""
        if request.websocket is not None:
            # Bounded by STREAM_MAX_DURATION, not REQUEST_TIMEOUT.
            return self.app(request.environ, request.start_response)
        import gevent
        with gevent.Timeout(self.timeout, RequestTimeout):
            return self.app(request.environ, request.start_response)

    def admit(self, request: Request, chunked: bool, unbuffered: bool, stream: bool):
        if not chunked or not self.full():
            return None
        self.refusals.note(request.what)
        return STREAM_SLOTS

    def bound(self, websocket, request: Request) -> None:
        self.limits.bound_websocket(websocket)

    def full(self) -> bool:
        return bool(self.stream_slots) and streams.OPEN.long_lived() >= self.stream_slots
