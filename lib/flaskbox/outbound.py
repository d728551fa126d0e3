"""The answer on its way out of a uWSGI worker: a layer around serve.Serve
(outbound.wrap), so that it sees each answer's headers as they go to uWSGI,
after the wrapper has chosen its framing and buffering.

- Vary, on every answer: one line, no token twice (an app's own
  `Vary: Accept-Encoding` and nginx's gzip_vary made two), and
  Accept-Encoding on every answer nginx may compress (COMPRESS_APP_RESPONSES,
  a type of GZIP_TYPES or HTML, whatever its length), its 304 included: RFC
  9110 15.4.5 has a 304 carry the Vary its 200 would, and nginx's gzip never
  sees a 304. A 304 from Werkzeug has no Content-Type left to judge by, so
  it carries Accept-Encoding whenever the app's answers may be compressed.
- sync workers: a client address holds at most CLIENT_STREAM_SHARE percent
  of all the threads with answers that go at its own pace (Share): a stream
  or an event stream, a large answer past RESPONSE_SPACE, a WebSocket. Each
  holds its thread until the client has read it (a file from send_file does
  not: uWSGI's offload thread sends it). Past the share, 503 with
  Retry-After at once, counted in /metrics as `stream_share`.
- sync workers: a stream whose reader has stopped ends once nginx has taken
  nothing of it for STALLED_SECONDS (Held), not after nginx's send_timeout,
  so its thread is free for others sooner. It ends cut, as it is: its client
  did not get it whole.
"""

from __future__ import annotations

import hashlib
import os
import select
import time

from .layout import GEVENT, RETRY_AFTER_SECONDS
from .log import log
from .prelude import OUTCOME
from .spool import close_body, file_given

# What nginx compresses besides text/html (nginx.conf's gzip_types).
GZIP_TYPES = ("text/css", "text/plain", "text/xml", "text/javascript", "application/javascript",
              "application/json", "application/xml", "application/rss+xml", "image/svg+xml")
COMPRESSIBLE = frozenset((*GZIP_TYPES, "text/html"))
# Statuses whose answer nginx's gzip compresses (200, 403, 404), and those
# that stand for a 200 (206, 304), so carry its Vary.
VARIED = frozenset((200, 206, 304, 403, 404))

# A stream nginx has taken nothing of for this long, with every buffer on
# the way to its client full (the client's socket, nginx's, the unix
# socket's: hundreds of KB or more), has a reader that stopped or vanished; nginx
# itself would wait for send_timeout (30 s) before it gave up on the client.
# An EventSource or a chat client that merely paused reconnects.
STALLED_SECONDS = 10
# The longest a worker waits for the share's lock (see Share.take).
LOCK_SECONDS = 1.0

REFUSED_BODY = b"Too many open streams from your address, try again later\n"


def template_values(values) -> dict[str, str]:
    """nginx.conf's compression placeholders."""
    return {"GZIP_TYPES": " ".join(GZIP_TYPES),
            "APP_GZIP": "on" if values["COMPRESS_APP_RESPONSES"] == "1" else "off"}


def settle(status: str, headers: list, compressed: bool) -> tuple[list, bool, bool]:
    """One pass over an answer's headers, for what this layer decides per
    answer: (the headers with one Vary line, each token once, Accept-Encoding
    added when nginx may compress this answer (or its 200); whether nginx
    passes it on as it comes, unbuffered, so that it holds its thread at the
    client's pace; whether it is chunked: a stream). Read once: this runs on
    every answer."""
    varies, kind, encoded, unbuffered, chunked = [], None, False, False, False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-type":
            kind = value
        elif lowered == "content-length":
            continue
        elif lowered == "vary":
            varies.append(value)
        elif lowered == "content-encoding":
            encoded = bool(value.strip())
        elif lowered == "x-accel-buffering":
            unbuffered = value.strip().lower() == "no"
        elif lowered == "transfer-encoding":
            chunked = "chunked" in value.lower()
    code = int(status[:3])
    add = (compressed and not encoded and code in VARIED
           and (kind.partition(";")[0].strip().lower() in COMPRESSIBLE if kind is not None else code == 304))
    if not varies:
        return ([*headers, ("Vary", "Accept-Encoding")] if add else headers), unbuffered, chunked
    tokens: dict[str, str] = {}
    for value in varies:
        for token in value.split(","):
            token = token.strip()
            if token:
                tokens.setdefault(token.lower(), token)
    if add:
        tokens.setdefault("accept-encoding", "Accept-Encoding")
    if "*" in tokens:
        tokens = {"*": "*"}
    line = ", ".join(tokens.values())
    if len(varies) == 1 and line == varies[0]:
        return headers, unbuffered, chunked
    settled = [*(header for header in headers if header[0].lower() != "vary"), ("Vary", line)]
    return settled, unbuffered, chunked


def settle_vary(status: str, headers: list, compressed: bool) -> list:
    """settle()'s headers alone: the Vary this layer settles on."""
    return settle(status, headers, compressed)[0]


def address_key(address: str) -> int:
    """A client address as one non-zero signed 64-bit number (0: a free slot)."""
    digest = hashlib.blake2b(address.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True) or 1


class Share:
    """CLIENT_STREAM_SHARE: which client address each worker thread holds
    with an answer at its client's pace, in memory the workers share (made
    in the master before the fork, as serve.Spool's is). Each worker has a
    row of `threads` slots, cleared by the first request of a new process:
    a worker killed mid-answer leaves nothing counted behind."""

    def __init__(self, percent: int, processes: int, threads: int):
        import multiprocessing
        self.threads = threads
        self.most = max(1, processes * threads * percent // 100)
        self.slots = multiprocessing.get_context("fork").Array("q", (processes + 1) * threads)
        self.pid: int | None = None
        self.refused, self.logged = 0, 0.0

    def take(self, address: str, worker: int) -> int | None:
        """A slot for one more answer of `address`; None: past its share.
        -1 (admitted, uncounted) when this worker's row has no room, which
        only a worker number outside the rows could cause."""
        key = address_key(address)
        row = range(worker * self.threads, min((worker + 1) * self.threads, len(self.slots)))
        lock = self.slots.get_lock()
        # Held for microseconds; one a worker took with it when it was killed
        # (os._exit by guards.py, from another thread) must not stop them all.
        if not lock.acquire(timeout=LOCK_SECONDS):
            return -1
        try:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                for index in row:
                    self.slots[index] = 0
            held = self.slots[:]
            if held.count(key) >= self.most:
                self.refused += 1
                refused = self.refused
            else:
                refused = 0
                for index in row:
                    if held[index] == 0:
                        self.slots[index] = key
                        return index
        finally:
            lock.release()
        if refused:
            self._note_refusal(address, refused)
            return None
        return -1

    def give_back(self, index: int) -> None:
        # A slot is this thread's alone: no lock is needed to free it.
        if index >= 0:
            self.slots.get_obj()[index] = 0

    def _note_refusal(self, address: str, count: int) -> None:
        """A log line at most every 10 s, with this process's count so far."""
        if time.monotonic() - self.logged >= 10:
            self.logged = time.monotonic()
            log(f"{address}: an answer at its pace refused with 503, {count} so far in pid {os.getpid()}: "
                f"the address holds {self.most} threads already (CLIENT_STREAM_SHARE)")


class Refused(BaseException):
    """Raised out of start_response when the client is past its share: it
    goes up through the app and serve.Serve (which end the request as for
    any error), to Outbound, which answers 503. A BaseException, so that an
    app's `except Exception` lets it through. The body the app had made
    (Werkzeug's, dropped when its start_response raised) is closed as soon
    as the exception is gone: CPython frees it then, and a generator's
    close() runs (stream_with_context pops its request context)."""


class Hold:
    """One request's slot in the Share, if it took one."""

    __slots__ = ("index", "started", "stream")

    def __init__(self):
        self.index: int | None = None
        self.started = False
        self.stream = False


def refuse(start_response) -> list[bytes]:
    start_response("503 Service Unavailable",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(REFUSED_BODY))),
                    ("Retry-After", str(RETRY_AFTER_SECONDS)), (OUTCOME, "stream_share")])
    return [REFUSED_BODY]


class Outbound:
    def __init__(self, app, compressed: bool, share: Share | None, worker_id=lambda: 0,
                 connection_fd=lambda: None):
        self.app = app
        self.compressed = compressed
        self.share = share
        self.worker_id = worker_id
        self.connection_fd = connection_fd

    def __call__(self, environ, start_response):
        if self.share is None:
            compressed = self.compressed

            def vary_start_response(status, headers, exc_info=None):
                return start_response(status, settle_vary(status, headers, compressed), exc_info)

            return self.app(environ, vary_start_response)
        return self._shared(environ, start_response)

    def _shared(self, environ, start_response):
        hold, share = Hold(), self.share
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            # Its thread is held from now on, for as long as it is open. The
            # address is nginx's, first in X-Flaskbox-Peer (serve.py reads the rest).
            hold.index = share.take(environ.get("HTTP_X_FLASKBOX_PEER", "").partition(" ")[0],
                                    self.worker_id())
            if hold.index is None:
                return refuse(start_response)

        def held_start_response(status, headers, exc_info=None):
            headers, unbuffered, chunked = settle(status, headers, self.compressed)
            hold.started = True
            if exc_info is None and hold.index is None:
                if unbuffered and not file_given(environ):
                    hold.index = share.take(environ.get("REMOTE_ADDR", ""), self.worker_id())
                    if hold.index is None:
                        raise Refused
                    hold.stream = chunked
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, held_start_response)
        except Refused:
            return refuse(start_response)
        except BaseException:
            if hold.index is not None:
                share.give_back(hold.index)
            raise
        if hold.index is None and hold.started:
            return body
        return Held(body, hold, share, start_response, self.connection_fd, environ)


class Held:
    """The body of an answer that holds a slot (or may yet take one: its
    start_response comes with its first chunk): gives the slot back when
    uWSGI closes it, and ends a stream whose reader has stopped."""

    def __init__(self, body, hold: Hold, share: Share, start_response, connection_fd, environ):
        self.body, self.hold, self.share = body, hold, share
        self.start_response = start_response
        self.connection_fd = connection_fd
        self.what = f"{environ.get('REQUEST_METHOD')} {environ.get('REQUEST_URI')}"

    def __iter__(self):
        iterator = iter(self.body)
        poller = None
        while True:
            try:
                data = next(iterator)
            except StopIteration:
                return
            except Refused:
                # Its start_response came with its first chunk: nothing was sent.
                yield from refuse(self.start_response)
                return
            if self.hold.stream:
                if poller is None:
                    poller = self._poller()
                if poller is not None and not poller.poll(STALLED_SECONDS * 1000):
                    log(f"{self.what}: nginx took nothing of this stream for {STALLED_SECONDS} s, its "
                        "reader has stopped: ended, and its thread freed")
                    return
            yield data

    def _poller(self):
        """Writability of the request's connection to nginx: a stream's chunk
        waits for room there, and past STALLED_SECONDS without any, ends."""
        fd = self.connection_fd()
        if fd is None:
            return None
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return poller

    def close(self) -> None:
        try:
            close_body(self.body)
        finally:
            if self.hold.index is not None:
                self.share.give_back(self.hold.index)
                self.hold.index = None


def wrap(app, settings, uwsgi_option, uwsgi):
    """serve.Serve with this layer around it, from the settings record and
    uWSGI's own numbers (`uwsgi_option`: an option as uWSGI ended up with it)."""
    share = None
    if settings["WORKER_CLASS"] != GEVENT and settings["CLIENT_STREAM_SHARE"] < 100:
        share = Share(settings["CLIENT_STREAM_SHARE"], int(uwsgi_option("processes", "1")),
                      int(uwsgi_option("threads", "1")))
    return Outbound(app, settings["COMPRESS_APP_RESPONSES"], share, uwsgi.worker_id, uwsgi.connection_fd)
