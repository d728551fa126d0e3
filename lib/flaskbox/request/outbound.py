"""What an answer on its way out of a uWSGI worker is given besides the
framing (request.py decides it all in its one pass over the headers):

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
  nothing of it for STALLED_SECONDS (body.py and streams.py ask
  stalled()), not after nginx's send_timeout, so its thread is free for
  others sooner. It ends cut, as it is: its client did not get it whole.
- An answer whose headers uWSGI cannot pass on whole is answered 500
  instead (too_big).
"""

from __future__ import annotations

import hashlib
import mmap
import select

from ..log import error, log
from .answers import PASSED_ON, Refusals
from .shared import WorkerRows

# What nginx compresses besides text/html (nginx.conf's gzip_types).
GZIP_TYPES = ("text/css", "text/plain", "text/xml", "text/javascript", "application/javascript",
              "application/json", "application/xml", "application/rss+xml", "image/svg+xml")
COMPRESSIBLE = frozenset((*GZIP_TYPES, "text/html"))
# Statuses whose answer nginx's gzip compresses (200, 403, 404), and those
# that stand for a 200 (206, 304), so carry its Vary.
VARIED = frozenset((200, 206, 304, 403, 404))
VARY = ("Vary", "Accept-Encoding")

# A stream nginx has taken nothing of for this long, with every buffer on
# the way to its client full (the client's socket, nginx's, the unix
# socket's: hundreds of KB or more), has a reader that stopped or vanished; nginx
# itself would wait for send_timeout (30 s) before it gave up on the client.
# An EventSource or a chat client that merely paused reconnects.
STALLED_SECONDS = 10
# The longest a worker waits for the share's lock (see Share.take).
LOCK_SECONDS = 1.0
# The most bytes of an answer's head uWSGI passes on whole: it holds the
# head in at most 64 KB, begun at a page and grown by at least a page, so
# up to a page less one may go unused (none with 64 KB pages: its first
# buffer is already whole), and it counts "HTTP/1.1 ", ": " and line ends
# too. Past it, a header 64 KB or longer went out cut (its length wraps at
# 16 bits) and logged as whole, and a shorter one made uWSGI drop the
# answer (nginx: 502), logged as the app's exception. start_response counts
# 4 bytes a header beside its name and value, and the status; 256 are kept
# for the headers the wrapper adds.
UNUSED = mmap.PAGESIZE - 1 if mmap.PAGESIZE < 65536 else 0
HEADER_ROOM = 65535 - UNUSED - len("HTTP/1.1 \r\n\r\n") - 256


def too_big(request, size: int, exc_info) -> None:
    """An answer whose headers are past HEADER_ROOM: 500 instead (nginx
    answers those past its own buffer, PROXY_HEADER_BUFFER, so too). With
    exc_info, after the app's head went out, uWSGI raises it again."""
    error(f"{request.what}: the app's answer has a {size}-byte head, more than uWSGI can pass on "
          f"whole ({HEADER_ROOM}): answered 500")
    request.rare, request.instead, request.chunked = True, PASSED_ON, False
    request.serve.gate.owes_line()
    request.respond(PASSED_ON.status, PASSED_ON.headers, exc_info)


def template_values(values) -> dict[str, str]:
    """nginx.conf's compression placeholders."""
    return {"GZIP_TYPES": " ".join(GZIP_TYPES),
            "APP_GZIP": "on" if values["COMPRESS_APP_RESPONSES"] == "1" else "off"}


def compressible(kind: str) -> bool:
    """Whether nginx compresses an answer of this Content-Type."""
    return kind.partition(";")[0].strip().lower() in COMPRESSIBLE


# What an answer's Content-Type tells (compressible by nginx, an event
# stream), by its whole value: an app sends few, and this is asked of nearly
# every answer.
KINDS: dict = {None: (False, False)}


def kind_of(kind: str) -> tuple[bool, bool]:
    found = (compressible(kind), kind[:17].lower() == "text/event-stream")
    if len(KINDS) < 256:
        KINDS[kind] = found
    return found


# An answer's status code, by its whole status line, as KINDS: no number
# parsed for nearly every answer.
CODES: dict = {}


def code_of(status) -> int:
    code = int(status[:3])
    if len(CODES) < 256:
        CODES[status] = code
    return code


def settled_vary(headers: list, varies: list[str], add: bool) -> list:
    """`headers` with their Vary lines (`varies`) as one, each token once,
    Accept-Encoding added if `add`; the same list when it already is so."""
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
        return headers
    return [*(header for header in headers if header[0].lower() != "vary"), ("Vary", line)]


def address_key(address: str) -> int:
    """A client address as one non-zero signed 64-bit number (0: a free slot)."""
    digest = hashlib.blake2b(address.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True) or 1


class Share(WorkerRows):
    """CLIENT_STREAM_SHARE: which client address each worker thread holds
    with an answer at its client's pace, a row of `threads` slots per
    worker."""

    def __init__(self, percent: int, processes: int, threads: int):
        super().__init__(processes, threads)
        self.most = max(1, processes * threads * percent // 100)
        self.refusals = Refusals(f"its address holds {self.most} threads already with answers at its pace "
                                 "(CLIENT_STREAM_SHARE)")

    def take(self, address: str, worker: int) -> int | None:
        """A slot for one more answer of `address`; None: past its share.
        -1 (admitted, uncounted) when this worker's row has no room, which
        only a worker number outside the rows could cause."""
        key = address_key(address)
        lock = self.values.get_lock()
        # Held for microseconds; one a worker took with it when it was killed
        # (os._exit by guards.py, from another thread) must not stop them all.
        if not lock.acquire(timeout=LOCK_SECONDS):
            return -1
        try:
            row = self.mine(worker)
            held = self.values[:]
            if held.count(key) >= self.most:
                refused = True
            else:
                refused = False
                for index in row:
                    if held[index] == 0:
                        self.values[index] = key
                        return index
        finally:
            lock.release()
        if refused:
            self.refusals.note(f"{address}: an answer at its pace")
            return None
        return -1

    def give_back(self, index: int) -> None:
        # A slot is this thread's alone: no lock is needed to free it.
        if index >= 0:
            self.values.get_obj()[index] = 0


def stalled(request) -> bool:
    """Whether nginx has taken nothing on the request's connection for
    STALLED_SECONDS: a stream's next part waits for room there (said in the log)."""
    if request.fd is None:
        return False
    poller = select.poll()
    poller.register(request.fd, select.POLLOUT)
    if poller.poll(STALLED_SECONDS * 1000):
        return False
    log(f"{request.what}: nginx took nothing of this stream for {STALLED_SECONDS} s, its reader has "
        "stopped: ended, and its thread freed")
    return True
