"""One request in a uWSGI worker, from nginx to the app and back: serve.py
makes one per request, and every decision about it is made once, here, and
kept for every later step to read.

- What nginx says of it in X-Flaskbox-Peer (a client's copy is always
  replaced), read once: the client's address and port and the server port
  for the environ (uWSGI sees only a unix socket), the seconds it waited
  for a worker, whether its connection came from a trusted proxy, and
  whether over nginx's own HTTPS.
- start_response: one pass over the answer's headers decides
  - its framing: an answer with a body and no Content-Length (a generator,
    Server-Sent Events) is framed as chunked, so that nginx can tell a
    whole stream from one cut short (framing.py), and its access log too;
    it and any text/event-stream are marked X-Accel-Buffering: no (unless
    the app set that header), so that nginx passes each chunk on at once;
  - how nginx takes a large answer: spooled to RUNTIME_DIR within
    RESPONSE_SPACE (spool.py), or at its client's pace past it; a file from
    wsgi.file_wrapper goes back to uWSGI untouched, which sends it from an
    offload thread: either way the worker is free at once;
  - what an answer at its client's pace takes (the client's share of
    threads, or gevent's stream slots: serve.py), or the 503 instead;
  - Vary (outbound.py).
- The body (body.py, the rest of the same object): the request is the
  body uWSGI iterates and closes.
"""

from __future__ import annotations

from functools import partial
from time import time

from . import outbound
from .body import Body, rest_of_body
from .framing import FRAMED, NO_BODY, chunk, last_chunk
from .outbound import VARIED, VARY, settled_vary
from .spool import Spool

NOT_BUFFERED = ("X-Accel-Buffering", "no")
CHUNKED = ("Transfer-Encoding", "chunked")
# A Content-Length with fewer digits than this fits nginx's memory buffers:
# no spooling to decide (a leading zero only makes it longer).
SPOOL_DIGITS = len(str(Spool.MEMORY + 1))


# What an answer's Content-Type tells (compressible by nginx, an event
# stream), by its whole value: an app sends few, and this is asked of nearly
# every answer.
KINDS: dict = {None: (False, False)}


def kind_of(kind: str) -> tuple[bool, bool]:
    found = (outbound.compressible(kind), kind[:17].lower() == "text/event-stream")
    if len(KINDS) < 256:
        KINDS[kind] = found
    return found


def ignore(data) -> None:
    """The write() of an answer that is not the app's to send."""


def wrap_file(wrapper, files: list, filelike, *args, **kwargs):
    """wsgi.file_wrapper, noting the files it gives (a list the request
    holds): an answer that is one goes back to uWSGI untouched."""
    given = wrapper(filelike, *args, **kwargs)
    files.append(given)
    return given


class Request(Body):
    __slots__ = (
        "serve", "environ", "respond", "waited", "trusted", "tls", "files",
        # The answer: start_response's decisions, and its body. `rare` (an
        # answer refused, spooled, holding a slot or a WebSocket, or one
        # uWSGI closes through the request) sets the rest: _rare().
        "chunked", "length", "rare", "websocket", "event_stream", "spooled", "slot", "stalls", "refused",
        "framed", "write", "body", "parts", "unread",
        # REQUEST_TIMEOUT (sync): guards.Watchdog reads these from its thread.
        "watched", "fd", "used", "since", "claimed_by", "expired_at",
        # A stream (streams.flow, streams.Open).
        "reason", "in_app", "thread", "greenlet", "published", "opened",
    )

    def __init__(self, serve, environ, respond):
        self.serve = serve
        self.environ = environ
        self.respond = respond  # uWSGI's start_response
        self.chunked = None  # until start_response
        self.rare = self.watched = False
        fields = environ.pop("HTTP_X_FLASKBOX_PEER", "").split(" ")
        if len(fields) == 6:
            (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"], sent, trusted,
             scheme) = fields
            self.trusted = trusted == "1"
            self.tls = scheme == "https"
        else:
            sent = self._odd_peer(fields)
        try:
            waited = time() - float(sent)
        except (TypeError, ValueError):
            waited = 0.0
        self.waited = waited if waited > 0.0 else 0.0
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            self.files = files = []
            environ["wsgi.file_wrapper"] = partial(wrap_file, wrapper, files)
        else:
            self.files = ()

    def _odd_peer(self, fields) -> str | None:
        """A peer header of another form than nginx's (or none): what it has."""
        if len(fields) >= 3:
            environ = self.environ
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"] = fields[:3]
        self.trusted, self.tls = fields[4:5] == ["1"], fields[5:6] == ["https"]
        return fields[3] if len(fields) > 3 else None

    def _rare(self) -> None:
        """The fields of a rarer request, at their defaults."""
        if not self.rare:
            self.rare = True
            self.websocket = self.refused = self.slot = self.parts = self.body = None
            self.spooled = 0
            self.unread = self.stalls = self.event_stream = False

    @property
    def what(self) -> str:
        """The request, as the log names it."""
        return f"{self.environ.get('REQUEST_METHOD')} {self.environ.get('REQUEST_URI')}"

    def answer(self, answer) -> list[bytes]:
        """One of the wrapper's own answers (answers.py) instead of the app's."""
        self.respond(answer.status, answer.headers)
        environ = self.environ
        if environ.get("CONTENT_LENGTH", "") not in ("", "0") and "wsgi.input" in environ:
            rest_of_body(environ)
        return [answer.body]

    # --- the answer's head ------------------------------------------------

    def start_response(self, status, headers, exc_info=None):
        """The app's start_response: every decision about its answer, from
        one pass over its headers."""
        if self.rare and self._muted():
            return ignore
        length = kind = accel = coding = te = varies = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-type":
                kind = value
            elif lowered == "content-length":
                length = value
            elif lowered == "vary":
                varies = [value] if varies is None else [*varies, value]
            elif lowered == "x-accel-buffering":
                accel = value
            elif lowered == "transfer-encoding":
                te = value
            elif lowered == "content-encoding":
                coding = value
        code = int(status[:3])
        compressible, event = KINDS.get(kind) or kind_of(kind)
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
        vary = (code in VARIED and self.serve.compressed and (compressible or (kind is None and code == 304))
                and not (coding and coding.strip()))
        if varies is not None:
            headers = settled_vary(headers, varies, vary)
        elif vary:
            headers = [*headers, VARY]
        write = self.respond(status, headers, exc_info)
        if not chunked:
            return write
        self.write = write
        return self.write_framed

    def _muted(self) -> bool:
        """Whether what the app passes to start_response must not be sent:
        it answered on the connection itself (101, then the WebSocket), or
        its answer was refused and the 503 is on its way."""
        if self.websocket is not None and self.websocket.taken:
            self.chunked = False
            return True
        return self.refused is not None

    def _pace(self, chunked: bool, event: bool, accel, te, length, exc_info) -> list | None:
        """The rarer answers' headers: how nginx is to take one that is not
        made whole in memory (a stream, an event stream, a file, a large
        body), and what it holds meanwhile. None: refused, the 503 instead."""
        self._rare()
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
                self.refused, self.chunked = refusal, False
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

    def last_chunk(self) -> bytes:
        return last_chunk(self.framed)

    @property
    def endable(self) -> bool:
        """A stream that may be ended early, cleanly: a chunked event stream."""
        return bool(self.chunked) and self.event_stream
