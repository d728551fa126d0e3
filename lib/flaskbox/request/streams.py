"""Long-lived responses in a uWSGI worker: streams and WebSockets.

A stream is a response without a Content-Length (a generator, Server-Sent
Events), which request.py frames as chunked. flow() passes its chunks on as
the app yields them. An event stream (text/event-stream) is the one kind
it ends early, cleanly, with the last chunk:

- at a stop or a reload's retirement (stopping.py), once it has had what the
  budget allows to finish by itself: most event streams today are answers
  with an end (an LLM's tokens, a workflow's progress), lost if ended early;
- with WORKER_CLASS=gevent, when it has sent nothing for
  STREAM_IDLE_TIMEOUT or has lasted STREAM_MAX_DURATION.

Any other stream (a CSV export, a generated download) is the client's data,
never ended early as if complete: a stop or a reload lets it go on within
its budget; gevent's STREAM_IDLE_TIMEOUT cuts one gone silent, visibly (no
last chunk), and STREAM_MAX_DURATION leaves it alone.

WebSockets (websocket.py) are counted here, and ended by stopping.py.

An error in the app's generator propagates: no last chunk, so nginx and the
client see the cut for what it is.
"""

from __future__ import annotations

import os
import threading
import time

from ..log import log
from .framing import last_chunk
from .outbound import stalled

# How a stream counted at a stop went (Open.left): it sent its last chunk
# by itself, it was ended at the budget's end (its last chunk sent), it was
# ended by a stream limit of gevent's meanwhile (its own line says which),
# or it was cut (the app failed, the client left, REQUEST_TIMEOUT).
FINISHED, ENDED, LIMITED, CUT = "finished", "ended", "limited", "cut"


class StreamEnd(BaseException):
    """Raised into a stream's generator, where it waits, to end it now.
    A BaseException, so that the app's `except Exception` lets it through."""


class StreamCut(StreamEnd):
    """The same, for a stream that is not an event stream: it ends without
    its last chunk, so the client and nginx's log see a cut."""


class Open:
    """The streams and WebSockets open in this worker."""

    def __init__(self):
        self.streams: set = set()  # request.Request, each a stream
        # By the request's connection fd (uWSGI's own handshake knows no more).
        self.websockets: dict = {}  # fd -> websocket.WebSocket
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
        # The generation's streams-end file (wsgi.py), which says by when
        # the event streams are to end at a stop or a retirement.
        self.end_file: str | None = None
        # A stop or a retirement, once told (stopping.py): what it is given
        # ("STOP_TIMEOUT 10 s"), the event streams open since, and how the
        # ones that are over went.
        self.occasion = self.budget = ""
        self.ended = False
        self.counted: set = set()
        self.tally = {FINISHED: 0, ENDED: 0, LIMITED: 0, CUT: 0}
        self.counting = threading.Lock()

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

    def begin_counting(self, occasion: str, budget: str) -> None:
        """Told of a stop or a retirement: the event streams open now, and
        those that open later, are counted until they are over."""
        with self.counting:
            self.stopping, self.occasion, self.budget = True, occasion, budget
            self.counted.update(stream for stream in list(self.streams) if stream.endable)

    def end_all(self, reason: str) -> list:
        """The event streams still open, each told to end for `reason` (at
        its next part, or raised into where it waits: stopping.py)."""
        endable = [stream for stream in list(self.streams) if stream.endable and stream.reason is None]
        for stream in endable:
            stream.told, stream.reason = True, reason  # told first: flow() reads reason, then told
        return endable

    def opened(self, stream) -> None:
        if self.stopping and stream.endable:
            with self.counting:
                self.counted.add(stream)

    def left(self, stream, how: str) -> None:
        """A stream is over: if it was counted, how it went; once the last
        counted one is over, the worker says how they all went."""
        with self.counting:
            if stream not in self.counted:
                return
            self.counted.discard(stream)
            self.tally[how] += 1
            if self.counted:
                return
            tally = dict(self.tally)
        log(said(tally, self.occasion, self.budget))


def said(tally: dict, occasion: str, budget: str) -> str:
    """How the event streams of a stop or a retirement went, in one line."""
    total = sum(tally.values())
    parts = [f"{tally[FINISHED]} finished"]
    if tally[ENDED]:
        parts.append(f"{tally[ENDED]} ended unfinished, cleanly, a second before the budget's end")
    if tally[LIMITED]:
        parts.append(f"{tally[LIMITED]} ended cleanly before, by STREAM_IDLE_TIMEOUT or STREAM_MAX_DURATION")
    if tally[CUT]:
        parts.append(f"{tally[CUT]} cut (the app failed, the client left, or REQUEST_TIMEOUT)")
    return (f"pid {os.getpid()}: the {total} event stream(s) open at {occasion} ({budget}): "
            f"{', '.join(parts)}")


OPEN = Open()


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

    def bound_websocket(self, websocket) -> None:
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
    # told: its reason is the stop's or the retirement's (Open.end_all).
    r.reason, r.told, r.in_app, r.published, r.greenlet = None, False, False, False, None
    r.opened, r.thread = time.monotonic(), threading.get_ident()
    if limits is not None:
        import gevent
        r.greenlet = gevent.getcurrent()
    OPEN.streams.add(r)
    OPEN.opened(r)
    cut, how = False, CUT
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
            if r.instead is not None:
                # Its start_response came with its first part, past the
                # stream limits: nothing of it was sent.
                yield r.instead.body
                return
            if not r.chunked:
                yield data
            elif data:
                if not r.published:
                    r.published = True
                    OPEN.publish()
                    OPEN.opened(r)  # its start_response may have come with this part
                if r.slot is not None and r.stalls and stalled(r):
                    return
                yield r.frame(data)
            r.used = 0.0
        lasted = time.monotonic() - r.opened
        if cut:
            log(f"{r.what}: stream cut after {lasted:.0f} s (its client sees the cut, the access log says "
                f"cut): {r.reason}")
            return
        if r.reason and not r.told:  # the stop's or the retirement's are counted (Open.left)
            log(f"{r.what}: event stream ended cleanly after {lasted:.0f} s: {r.reason}")
        if r.chunked and (not watched or r.answering()):
            yield last_chunk(r.framed)
            how = ENDED if r.told else LIMITED if r.reason else FINISHED
    finally:
        OPEN.streams.discard(r)
        if OPEN.stopping:
            OPEN.left(r, how)
        if r.published:
            OPEN.publish()
