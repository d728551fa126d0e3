"""One request in a uWSGI worker, from nginx to the app and back: serve.py
makes one per request; every decision about it is made once, here, and
kept on it for every later step (each field declared on the class with
its value until a step decides); body.py holds its body's steps.

- X-Flaskbox-Peer (nginx's; a client's copy is always replaced), read once:
  the client's address and port and the server port (uWSGI sees a unix
  socket), the seconds it waited for a worker, whether its connection came
  from a trusted proxy, and whether over nginx's own HTTPS.
- start_response: one pass over the answer's headers decides
  - its framing: a body without Content-Length (a generator, Server-Sent
    Events) goes chunked, so that nginx and its access log can tell a whole
    stream from one cut short (framing.py); it and any text/event-stream
    get X-Accel-Buffering: no (unless the app set it): each chunk at once;
  - how nginx takes a large answer: spooled within RESPONSE_SPACE
    (spool.py), or at its client's pace past it; a wsgi.file_wrapper file
    goes back to uWSGI untouched, for its offload thread: the worker is free;
  - what an answer at its client's pace takes (the client's share of
    threads, or gevent's stream slots: serve.py), or the 503 instead;
  - Vary (outbound.py); a 304 where the app's ETag matches (revalidation.py).
- REQUEST_TIMEOUT (sync workers): watch() starts the clock and enters the
  watchdog's registry (guards.Watchdog), unwatch() leaves it; the request's
  own thread claims the answer before its first bytes go, or the watchdog
  does (expire(): a 504): never both.
- The body: finish() hands uWSGI a list (the usual answer) or the request
  itself, which uWSGI then iterates and closes (body.py).
"""

from __future__ import annotations

import threading
from threading import get_ident
from time import monotonic, time

from . import body, outbound, revalidation, streams
from .deadline import PENDING, route
from .framing import FRAMED, NO_BODY, chunk
from .outbound import VARIED, VARY, settled_vary
from .spool import Spool

NOT_BUFFERED = ("X-Accel-Buffering", "no")
CHUNKED = ("Transfer-Encoding", "chunked")
# A Content-Length with fewer digits than this fits nginx's memory buffers:
# no spooling to decide (a leading zero only makes it longer).
SPOOL_DIGITS = len(str(Spool.MEMORY + 1))
# The headers start_response looks at besides Content-Type and Content-Length.
DECIDING = frozenset(("vary", "x-accel-buffering", "transfer-encoding", "content-encoding"))
# One lock for every claim of an answer and every leaving of the watchdog's registry (guards.py).
CLAIMS = threading.Lock()


def ignore(data) -> None:
    """The write() of an answer that is not the app's to send."""


class Request:
    # Every field, at what it is until a step decides otherwise: set on the
    # class, so that a request pays only for the fields its own steps set
    # (docs/BENCHMARKS.md, "The price list"). Its peer first (__init__, from nginx's header).
    serve = environ = respond = None
    waited = 0.0
    trusted = tls = body_left = False
    files = ()  # what wsgi.file_wrapper gave (Serve.noting)
    # The answer: start_response's decisions (chunked: None until then), and its body.
    chunked = length = write = body = parts = None
    framed, unread = 0, False
    # A rarer answer: `rare` says one of these was decided (start_response's longer way, a WebSocket).
    rare = event_stream = stalls = False
    # instead: the wrapper's answer in place of the app's (a 503 refusal, a 304, a head too big's 500).
    websocket = slot = instead = None
    spooled = 0
    # REQUEST_TIMEOUT (sync): guards.Watchdog reads these from its thread (the clock's: until watch()).
    fd = since = claimed_by = expired_at = None
    watched, used = False, 0.0
    # Its place (admission.py): its kind, when let in (None: none held), alone or not, its route,
    # what the gate counted of it (Gate.turn), its thread's CPU time when let in, and (Gate.outside)
    # at a window's end past its time alone, and whether its place is lent.
    times = entered = route = seen = None
    entry, counted, credited, cpu, lent = 0, 0.0, 0.0, 0.0, False
    # A stream (streams.flow, streams.Open).
    reason = thread = greenlet = None
    in_app, published, told, opened = False, False, False, 0.0

    def __init__(self, serve, environ, respond):
        self.serve = serve
        self.environ = environ
        self.respond = respond  # uWSGI's start_response
        # The fields every request reads: an instance's own are read faster than its class's.
        self.rare = False
        self.times = self.websocket = self.claimed_by = None
        self.files = ()
        self.counted = self.credited = 0.0
        # Whether the request came with a body the app may leave unread:
        # body.py says why the rest is read before uWSGI ends the answer.
        self.body_left = ("CONTENT_LENGTH" in environ and environ["CONTENT_LENGTH"] not in ("", "0")
                          and "wsgi.input" in environ)
        fields = environ.pop("HTTP_X_FLASKBOX_PEER", "").split(" ")
        try:  # (nothing is stored unless all six are there)
            (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"], sent, trusted,
             scheme) = fields
            self.trusted, self.tls = trusted == "1", scheme == "https"
        except ValueError:
            sent = self._odd_peer(fields)
        try:
            waited = time() - float(sent)
        except (TypeError, ValueError):
            waited = 0.0
        self.waited = waited if waited > 0.0 else 0.0
        try:  # (uWSGI's is in every request's environ: a subscript, not a call)
            wrapper = environ["wsgi.file_wrapper"]
        except KeyError:
            return
        if wrapper is not None:  # one that notes the files it gives (Serve.noting)
            environ["wsgi.file_wrapper"] = (serve.noted_wrapper if wrapper is serve.file_wrapper
                                            else serve.noting(self, wrapper))

    def _odd_peer(self, fields) -> str | None:
        """A peer header of another form than nginx's (or none): what it has."""
        if len(fields) >= 3:
            environ = self.environ
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"] = fields[:3]
        self.trusted, self.tls = fields[4:5] == ["1"], fields[5:6] == ["https"]
        return fields[3] if len(fields) > 3 else None

    @property
    def what(self) -> str:
        """The request, as the log names it."""
        return f"{self.environ.get('REQUEST_METHOD')} {self.environ.get('REQUEST_URI')}"

    @property
    def taken(self) -> bool:
        """Whether the app took the connection for its WebSocket: the answer
        is the app's own, and no answer of the wrapper's may follow."""
        return self.websocket is not None and self.websocket.taken

    def answer(self, answer) -> list[bytes]:
        """One of the wrapper's own answers (answers.py) instead of the app's."""
        if answer.status[0] == "5":  # uWSGI logs it as its thread leaves (parking.py)
            self.serve.gate.owes_line()
        self.respond(answer.status, answer.headers)
        if self.body_left:
            body.rest_of_body(self.environ)
        return [answer.body]

    # --- the answer's head ------------------------------------------------

    def start_response(self, status, headers, exc_info=None):
        """The app's start_response: every decision about its answer, from
        one pass over its headers."""
        if self.rare and (self.taken or self.instead is not None):
            # The app took the connection (a WebSocket), or the wrapper's answer replaced its own.
            self.chunked = False
            return ignore
        if self.times is PENDING:  # read while Flask's request is still in the environ
            self.route = route(self.environ)
        length = kind = accel = coding = te = varies = None
        size = len(status) + 4 * len(headers)  # each header's ": " and CRLF
        for name, value in headers:
            size += len(name) + len(value)
            lowered = name.lower()
            if lowered == "content-type":
                kind = value
            elif lowered == "content-length":
                length = value
            elif lowered not in DECIDING:
                continue
            elif lowered == "vary":
                varies = [value] if varies is None else [*varies, value]
            elif lowered == "x-accel-buffering":
                accel = value
            elif lowered == "transfer-encoding":
                te = value
            elif lowered == "content-encoding":
                coding = value
        if size > outbound.HEADER_ROOM:
            outbound.too_big(self, size, exc_info)
            return ignore
        code = outbound.CODES.get(status) or outbound.code_of(status)
        compressible, event = outbound.KINDS.get(kind) or outbound.kind_of(kind)
        vary = (code in VARIED and self.serve.compressed and (compressible or (kind is None and code == 304))
                and not (coding and coding.strip()))
        if varies is not None:
            headers = settled_vary(headers, varies, vary)
        elif vary:
            headers = [*headers, VARY]
        if code == 200 and "HTTP_IF_NONE_MATCH" in self.environ and revalidation.unchanged(self, headers,
                                                                                          exc_info):
            return ignore  # 304 instead: the client's copy is current
        self.chunked = chunked = (length is None and te is None and code >= 200 and code not in NO_BODY
                                  and self.environ["REQUEST_METHOD"] != "HEAD")
        self.length = length
        if chunked or event or accel is not None or self.files or (length is not None
                                                                   and len(length) >= SPOOL_DIGITS):
            extra = self._pace(chunked, event, accel, te, length, exc_info)
            if extra is None:
                return ignore  # refused: the 503 is on its way instead
            if extra:
                headers = [*headers, *extra]
        if code >= 500:
            self.serve.gate.owes_line()
        write = self.respond(status, headers, exc_info)
        if not chunked:
            return write
        self.write = write
        return self.write_framed

    def _pace(self, chunked: bool, event: bool, accel, te, length, exc_info) -> list | None:
        """The rarer answers' headers: how nginx is to take one that is not
        made whole in memory (a stream, an event stream, a file, a large
        body), and what it holds meanwhile. None: refused, the 503 instead."""
        self.rare = True
        self.event_stream = event
        extra = []
        serve = self.serve
        if accel is not None:
            unbuffered = accel.strip().lower() == "no"  # the app chose for itself
        elif chunked or event or self.files:
            unbuffered = True
            extra.append(NOT_BUFFERED)
        else:
            unbuffered = serve.spool is not None and self._spooling(length)
            if unbuffered:
                extra.append(NOT_BUFFERED)
        if (chunked or unbuffered) and exc_info is None and self.slot is None:
            stream = chunked or (te is not None and "chunked" in te.lower())
            refusal = serve.admit(self, chunked, unbuffered, stream)
            if refusal is not None:
                # Nothing of the app's answer is sent: the 503 instead.
                self.instead, self.chunked = refusal, False
                serve.gate.owes_line()  # a 503
                self.respond(refusal.status, refusal.headers)
                return None
        if chunked:
            self.framed = 0
            extra += (CHUNKED, FRAMED)
        return extra

    def _spooling(self, length: str) -> bool:
        """A body larger than nginx's memory buffers is spooled to disk, if
        the budget takes it (noted: given back once it is written); False,
        or True for one that must go at its client's pace instead."""
        if self.spooled or not length.isdigit():
            return False  # start_response again (with exc_info), or no number
        size = int(length)
        if size <= Spool.MEMORY:
            return False
        serve = self.serve
        if not serve.spool.admits(size, serve.worker_id()):
            return True
        self.spooled = size
        return False

    def write_framed(self, data) -> None:
        if data:
            self.write(self.frame(data))

    def frame(self, data: bytes) -> bytes:
        """`data` as a chunk, counted toward the body's length."""
        framed = chunk(data)
        self.framed += len(framed)
        return framed

    @property
    def endable(self) -> bool:
        """A stream that may be ended early, cleanly: a chunked event stream."""
        return bool(self.chunked) and self.event_stream

    # --- REQUEST_TIMEOUT (sync) --------------------------------------------

    def watch(self, watchdog, fd: int | None) -> None:
        """REQUEST_TIMEOUT's clock starts (counting the time the request
        waited in the queue), and the watchdog notes the request, by its
        thread, until unwatch()."""
        self.fd = fd
        self.used = self.waited
        self.watched = True
        self.since = self.entered if self.entered is not None else monotonic()  # let in a moment ago
        if not watchdog.started:
            watchdog.new_worker()
        watchdog.running[get_ident()] = self

    def unwatch(self) -> None:
        """The watchdog lets the request go: it leaves the registry."""
        if self.watched:
            self.watched = False
            with CLAIMS:
                self.serve.watchdog.running.pop(get_ident(), None)

    def claim(self, by: str) -> bool:
        """Either the request's own thread claims the answer (it is about to
        send its first bytes) or the watchdog does (it answers 504): never
        both. Once the app's, it stays the app's."""
        with CLAIMS:
            return self._claimed(by)

    def _claimed(self, by: str) -> bool:
        """Under CLAIMS: the claim's test and store (finish() writes it out)."""
        if self.claimed_by is None:
            self.claimed_by = by
        return self.claimed_by == by

    def expire(self, running: dict, ident: int, now: float, copy):
        """The watchdog's claim past REQUEST_TIMEOUT: None if the thread `ident` has answered since it
        saw the request in `running` (it left: its connection is uWSGI's again); else whether the
        answer is the watchdog's 504 (not a cut), and `copy(fd)`, under the lock the thread leaves by."""
        with CLAIMS:
            if running.get(ident) is not self:
                return None
            self.expired_at = now
            return self._claimed("watchdog"), copy(self.fd)

    def answering(self) -> bool:
        """Whether this thread may send the next part: not past
        REQUEST_TIMEOUT (cut, or answered 504 already)."""
        if self.expired_at is not None:
            return False
        return self.claimed_by == "app" or self.claim("app")

    def elapsed(self, now: float) -> float:
        since = self.since
        return self.used + (now - since if since is not None else 0.0)

    def stop_clock(self) -> None:
        if not self.watched:
            return
        since = self.since
        if since is not None:
            self.used += monotonic() - since
            self.since = None

    def let_go(self) -> None:
        """The app takes its WebSocket's connection: REQUEST_TIMEOUT lets the
        request go, unless it has answered 504 on it already."""
        if not self.claim("app"):
            raise BrokenPipeError(f"{self.what}: answered 504 already, past REQUEST_TIMEOUT")
        self.serve.gate.leave(self)  # its place: a WebSocket lasts as long as its client wants
        self.stop_clock()
        self.unwatch()

    # --- the body: what uWSGI is handed, iterates and closes ---------------

    def finish(self, result):
        """The app has returned its answer's body: what uWSGI is to send."""
        if self.rare or self.chunked is not False or not self.watched or self.body_left:
            self.serve.gate.leave(self)
            return body.rarer(self, result)
        # The usual answer: made whole (a list, a file), or with a
        # Content-Length. Its first part is made here, under the clock: an
        # answer that is all in it leaves as a list, with nothing left to
        # watch; any other's parts are watched as uWSGI asks for them.
        if type(result) is list or isinstance(result, (list, tuple)) or (
                self.files and body.given_file(self, result)):  # (type(): no call made for a list)
            parts = result
        else:
            try:  # (what raises goes to Serve.run, which gives the place back)
                iterator = iter(result)
                first = next(iterator, None)
            except BaseException:
                body.close(result)
                raise
            try:
                whole = first is None or len(first) >= int(self.length)
            except (TypeError, ValueError):
                whole = False
            if not whole:
                self.serve.gate.leave(self)
                self.stop_clock()
                return body.watched(self, result, iterator, first, True)
            # All of it: the rest is not asked for (PEP 3333 lets a server stop).
            parts = [first] if first is not None else []
            body.close(result)
        # claim("app") and unwatch(), written out: every usual answer comes this way.
        CLAIMS.acquire()
        claimed = self.claimed_by
        if claimed is None:
            self.claimed_by = claimed = "app"
        self.watched = False
        serve = self.serve
        serve.watchdog.running.pop(get_ident(), None)
        CLAIMS.release()
        serve.gate.leave(self, None, True)  # (whole: positional, a keyword costs its call 0.1k)
        if claimed == "app":
            return parts
        if parts is result:
            body.close(result)
        return []  # answered 504 already

    def __iter__(self):
        if self.chunked is not False:
            self.parts = streams.flow(self, iter(self.body))
        elif self.watched:
            self.parts = body.watched(self, self.body, iter(self.body), None, False)
        else:
            return iter(self.body)
        return self.parts

    def close(self) -> None:
        """uWSGI has sent what it will of the answer: the rest of the
        request's body is read, and what the answer held is given back."""
        body.closed(self)
