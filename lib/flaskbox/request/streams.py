"""Long-lived responses in a uWSGI worker: streams and WebSockets.

A stream is a response without a Content-Length (a generator, Server-Sent
Events), which request.py frames as chunked. flow() passes its chunks on as
the app yields them. An event stream (text/event-stream) is the one kind
it ends early, cleanly, with the last chunk, since EventSource reconnects:

- when the container stops or a reload retires this worker's generation
  (the arbiter sends STOP_SIGNAL to the workers first), so that open event
  streams hold neither;
- with WORKER_CLASS=gevent, when it has sent nothing for
  STREAM_IDLE_TIMEOUT or has lasted STREAM_MAX_DURATION.

Any other stream (a CSV export, a generated download) is the client's data,
never ended early as if complete: a stop or a reload lets it go on within
its budget; gevent's STREAM_IDLE_TIMEOUT cuts one gone silent, visibly (no
last chunk), and STREAM_MAX_DURATION leaves it alone.

A WebSocket is a connection the app took over after an Upgrade; at the same
moments as an event stream it gets a close frame, 1001 "going away", and its
socket is shut down, so the app's receive loop ends and the client knows to
reconnect.

An error in the app's generator propagates: no last chunk, so nginx and the
client see the cut for what it is.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

from ..layout import STOP_STREAMS_SIGNAL
from ..log import log
from .outbound import stalled

# What the arbiter sends each worker when the container stops (layout.py).
# Ignored by default, so a worker with no handler yet (gevent's, before its
# first request) is unaffected.
STOP_SIGNAL = getattr(signal, f"SIG{STOP_STREAMS_SIGNAL}")
# A WebSocket close frame (FIN, opcode 8, 2 bytes, unmasked as a server's
# frames are) with status 1001, "going away".
CLOSE_GOING_AWAY = b"\x88\x02\x03\xe9"
# How long an ended WebSocket reads what the client still sends (its close
# frame) before the connection is closed. Closed with unread bytes, it would
# be reset instead: the client could lose the last frames sent to it, and
# nginx logs "Connection reset by peer" (seen on 1 Socket.IO disconnect in 2).
LINGER_SECONDS = 1.0


class StreamEnd(BaseException):
    """Raised into a stream's generator, where it waits, to end it now.
    A BaseException, so that the app's `except Exception` lets it through."""


class StreamCut(StreamEnd):
    """The same, for a stream that is not an event stream: it ends without
    its last chunk, so the client and nginx's log see a cut."""


class WebSocket:
    """The connection of a request that asked for an Upgrade, for the app
    (environ["werkzeug.socket"], as Werkzeug's dev server provides it, which
    flask-sock and simple-websocket use) and for ending it. `taken` tells
    whether the app wrote on it: then the response is the app's, not uWSGI's."""

    def __init__(self, fd: int, what: str):
        self.fd = fd
        self.sock = socket.socket(fileno=os.dup(fd))
        # uWSGI's connections are non-blocking, which a socket made from one
        # does not know of: its recv() would fail at once with EAGAIN. A
        # blocking one (gevent's, under gevent, waits in the loop instead).
        self.sock.settimeout(None)
        self.what = what
        self.taken = False
        # Taken by uWSGI's own handshake (which sent the 101 itself).
        self.native = False
        # Called once, in the app's thread, as the app takes the connection
        # (request.Request.let_go: REQUEST_TIMEOUT watches the request until then).
        self.on_take = None
        self.closed = False
        self.timer = None  # gevent: ends it at STREAM_MAX_DURATION

    def let_go(self) -> None:
        """The app is about to answer on the connection itself."""
        callback, self.on_take = self.on_take, None
        if callback is not None:
            callback()

    def take(self) -> None:
        if not self.taken:
            self.let_go()
            self.taken = True

    def send(self, data, *args):
        self.take()
        return self.sock.send(data, *args)

    def sendall(self, data, *args):
        self.take()
        return self.sock.sendall(data, *args)

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def end(self, reason: str) -> None:
        """Close frame (once the connection is a WebSocket) and shutdown,
        once; the app's own loop then ends."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.taken:
                self.sock.sendall(CLOSE_GOING_AWAY)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client is already gone

    def release(self) -> None:
        """Once the app is done with it. Taken: a lingering close (below).
        Not taken, the app answered as to any request (the route is no
        WebSocket, or it refused the upgrade): only this copy of the
        connection is closed, and uWSGI sends that answer on its own."""
        if not self.taken:
            self.closed = True
            self.sock.close()
            return
        self._linger()

    def done(self) -> None:
        """The request is over: no longer counted, released, its timer gone."""
        OPEN.websockets.pop(self.fd, None)
        OPEN.publish()
        self.release()
        if self.timer is not None:
            self.timer.kill(block=False)

    def _linger(self) -> None:
        """A lingering close: end our side (the client reads all we sent,
        then the end), read what the client still sends until it closes too
        or LINGER_SECONDS pass, then close."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            while self.sock.recv(65536) and time.monotonic() < deadline:
                pass
        except OSError:
            pass  # already shut down, the client is gone, or it lingered too long
        self.sock.close()


class Open:
    """The streams and WebSockets open in this worker."""

    def __init__(self):
        self.streams: set = set()  # request.Request, each a stream
        # By the request's connection fd (uWSGI's own handshake knows no more).
        self.websockets: dict[int, WebSocket] = {}
        self.stopping = False
        self.handler_pid: int | None = None
        # METRICS_PORT: this worker's open streams and WebSockets, in a file
        # of this folder (wsgi.py sets it) that flaskbox/sidecars/metrics.py sums
        # over the workers alive; None: no metrics.
        self.metrics_dir: str | None = None
        self.published = (0, 0)
        self.publishing = threading.Lock()
        # Why guards.py is about to replace this worker, if it is.
        self.replaced: str | None = None

    def publish(self) -> None:
        """Writes the counts when they changed (a chunked stream or a
        WebSocket opened or ended): nothing per ordinary request."""
        if self.metrics_dir is None:
            return
        with self.publishing:
            counts = (sum(1 for stream in list(self.streams) if stream.published), len(self.websockets))
            if counts == self.published and self.replaced is None:
                return
            self.published = counts
            path = f"{self.metrics_dir}/worker-{os.getpid()}"
            try:
                with open(f"{path}.new", "w") as file:
                    file.write(f"{counts[0]} {counts[1]} {self.replaced or ''}\n".rstrip() + "\n")
                os.replace(f"{path}.new", path)
            except OSError:
                pass  # metrics are not worth a request

    def replacing(self, reason: str) -> None:
        """guards.py replaces this worker: metrics.py counts it by reason once
        the worker is gone (its file says why)."""
        self.replaced = reason
        self.publish()

    def long_lived(self) -> int:
        """Streams (chunked) and WebSockets open now."""
        return sum(1 for stream in self.streams if stream.chunked) + len(self.websockets)

    def end_all(self, reason: str):
        """Ends every event stream and WebSocket (any other response goes on
        within the stop's or the reload's budget); returns the stream whose
        generator this thread is running, for the caller to raise into."""
        self.stopping = True
        endable = [stream for stream in list(self.streams) if stream.endable]
        if endable or self.websockets:
            log(f"pid {os.getpid()}: ending {len(endable)} event stream(s) and {len(self.websockets)} "
                f"WebSocket(s) cleanly, their clients reconnect: {reason}")
        here = None
        for stream in endable:
            stream.reason = reason
            if stream.in_app and stream.greenlet is not None:
                import gevent  # only ever set with WORKER_CLASS=gevent
                gevent.kill(stream.greenlet, StreamEnd(reason))
            elif stream.in_app and stream.thread == threading.get_ident():
                here = stream
        for websocket in list(self.websockets.values()):
            websocket.end(reason)
        return here


OPEN = Open()


# Why STOP_SIGNAL came: the container stops, or a reload retires this
# worker's generation; either way this worker serves no new request.
STOP_REASON = "this worker is stopping (the container stops, or a reload replaced its code)"


def on_stop_signal(signum, frame) -> None:
    """Sync workers: a Python signal handler, which runs in the main thread;
    a stream being produced there ends at once, streams on other threads at
    their next chunk."""
    here = OPEN.end_all(STOP_REASON)
    if here is not None:
        raise StreamEnd(here.reason)


def install_stop_handler_once(gevent_mode: bool) -> None:
    if OPEN.handler_pid == os.getpid():
        return
    OPEN.handler_pid = os.getpid()
    if gevent_mode:
        import gevent
        gevent.signal_handler(STOP_SIGNAL, OPEN.end_all, STOP_REASON)
    else:
        signal.signal(STOP_SIGNAL, on_stop_signal)
        watch_for_the_stop_signal()


def watch_for_the_stop_signal() -> None:
    """Python runs a signal handler in the main thread, and only once that
    thread runs Python again: in a threaded worker it mostly waits in
    uWSGI's own loop, so the streams on the other threads would never hear
    of the stop. Python's C-level handler also writes the signal's number
    to a wakeup descriptor at once, from any thread: a thread of ours reads
    it and ends them. (Called in the main thread, as set_wakeup_fd needs.)"""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        # Signals are the main thread's to take, as uWSGI means (its handlers
        # look for the request of the thread they run in).
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            if int(STOP_SIGNAL).to_bytes(1, "little") in os.read(read_end, 64):
                OPEN.end_all(STOP_REASON)

    threading.Thread(target=watch, name="flaskbox-stop-watch", daemon=True).start()


def mark_native_handshakes(uwsgi) -> None:
    """uWSGI's own WebSocket API (Flask-SocketIO's gevent_uwsgi mode) sends
    the 101 itself: note that the connection is a WebSocket from then on."""
    original = uwsgi.websocket_handshake

    def handshake(*args, **kwargs):
        websocket = OPEN.websockets.get(uwsgi.connection_fd())
        if websocket is None:
            return original(*args, **kwargs)
        websocket.let_go()
        result = original(*args, **kwargs)
        websocket.taken = websocket.native = True
        return result

    uwsgi.websocket_handshake = handshake


class Limits:
    """STREAM_IDLE_TIMEOUT and STREAM_MAX_DURATION, with gevent: each wait
    for the app's next chunk is bounded by whichever comes first. An event
    stream ends cleanly at either; any other stream is cut when it has gone
    silent, and never for its length."""

    def __init__(self, idle: float, most: float):
        self.idle = idle
        self.most = most  # 0: no limit

    def next(self, iterator, stream):
        import gevent
        if not stream.chunked:
            return next(iterator)
        wait, reason = self.idle, f"nothing sent for STREAM_IDLE_TIMEOUT ({self.idle:g} s)"
        end = StreamEnd if stream.endable else StreamCut
        if self.most and stream.endable:
            left = stream.opened + self.most - time.monotonic()
            if left <= wait:
                wait, reason = max(left, 0), f"STREAM_MAX_DURATION ({self.most:g} s) reached"
        with gevent.Timeout(wait, end(reason)):
            return next(iterator)

    def bound_websocket(self, websocket: WebSocket) -> None:
        """STREAM_MAX_DURATION for a WebSocket; its idle time is nginx's to
        bound (proxy_read_timeout), which sees the traffic both ways."""
        if self.most:
            import gevent
            reason = f"STREAM_MAX_DURATION ({self.most:g} s) reached"
            websocket.timer = gevent.spawn_later(self.most, websocket.end, reason)


def flow(request, iterator):
    """A stream's parts as uWSGI is to send them (the body of request.py's
    Request, for an answer without a Content-Length, or whose start_response
    comes with its first part): each framed as a chunk if request.chunked
    says so, then the last chunk if the stream ended normally or was ended
    here (an event stream); one cut (StreamCut, REQUEST_TIMEOUT, a reader
    that stopped) gets none. With sync workers REQUEST_TIMEOUT's clock runs
    while the app makes each part (request.py)."""
    r = request
    limits, watched = r.serve.limits, r.watched
    r.reason, r.in_app, r.published, r.greenlet = None, False, False, None
    r.opened, r.thread = time.monotonic(), threading.get_ident()
    if limits is not None:
        import gevent
        r.greenlet = gevent.getcurrent()
    OPEN.streams.add(r)
    cut = False
    try:
        while r.reason is None:
            if watched:
                r.since = time.monotonic()
            try:
                r.in_app = True
                if r.reason is not None:  # came just before the flag
                    raise StreamEnd(r.reason)
                data = next(iterator) if limits is None else limits.next(iterator, r)
            except StopIteration:
                break
            except StreamCut as end:
                r.reason, cut = str(end), True
                break
            except StreamEnd as end:
                r.reason = r.reason or str(end)
                break
            finally:
                r.in_app = False
                if watched:
                    r.stop_clock()
            if watched and not r.answering():
                return  # past REQUEST_TIMEOUT: cut, or answered 504 already
            if r.refused is not None:
                # Its start_response came with its first part, past the
                # stream limits: nothing of it was sent.
                yield r.refused.body
                return
            if not r.chunked:
                yield data
            elif data:
                if not r.published:
                    r.published = True
                    OPEN.publish()
                if r.slot is not None and r.stalls and stalled(r.fd):
                    r.stopped_reading()
                    return
                yield r.frame(data)
            r.used = 0.0
        lasted = time.monotonic() - r.opened
        if cut:
            log(f"{r.what}: stream cut after {lasted:.0f} s (its client sees the cut, the access log says "
                f"cut): {r.reason}")
            return
        if r.reason and not OPEN.stopping:
            log(f"{r.what}: event stream ended cleanly after {lasted:.0f} s: {r.reason}")
        if r.chunked and (not watched or r.answering()):
            yield r.last_chunk()
    finally:
        OPEN.streams.discard(r)
        if r.published:
            OPEN.publish()
