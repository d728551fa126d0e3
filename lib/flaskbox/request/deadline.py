"""How long a sync worker's answers take to start, kept for each kind of
request (its method and path): a request that waited in the queue so long
that its answer could not start within REQUEST_TIMEOUT is refused with a
503 when a worker takes it (serve.Serve.waited_long), rather than started
only to run past its deadline. Under overload, every request let in then
finishes: Keystone's logins (issue 69) were each let in with a second or
two left of their 30, each slowed by all the others, and every one of
them answered 504 at the deadline; the CPU they took delivered nothing.

Kept by kind, since one slow page says nothing of another: a health page
that waited two seconds behind a 2 s report still answers in time. Each
worker goes by the longer of its own answers and the pool's last word on
the kind (PoolTimes), since the workers share the CPUs: a fresh worker
(replacing one that a request past REQUEST_TIMEOUT retired) knows no
answer, and a worker whose own answers came while few ran at once does
not see the others slow down. A kind nobody has answered is let in."""

from __future__ import annotations

import mmap
import os
import re
import zlib
from collections import deque
from pathlib import Path
from time import monotonic

from .answers import Refusals

DIGIT = re.compile(r"\d")

# The recent answers of a kind the estimate is the longest of, and the
# margin it is taken with: a request is let in only if its answer would
# start in time even taking a quarter longer than the slowest of them did.
# Under overload the answers let in finish close to the deadline, and each
# varies as the machine's neighbours come and go: on issue 69's stand-in
# their 90th percentile let one in 20 run past it, and their longest alone
# one in 70.
KEPT, MARGIN = 16, 1.25
# The kinds kept, at most: a path made of names no digit marks (a slug a
# page) makes a kind each; past this many, a new one is let in unmeasured.
KINDS = 256
# The pool's record: slots a kind is hashed to (a collision only costs the
# kind its borrowed estimate), and how long a word in it is believed. Under
# a neighbour's burst, each request past the deadline retired its worker,
# and each fresh worker, knowing no answer, let in requests that had
# waited 2.9 s of 3, which ran past it in turn: 151 logins of 168 answered
# 504 in 20 s.
SLOTS, BELIEVED = 512, 60.0


def slot(key: str) -> tuple[float, int]:
    """A kind's name in the pool's record (the same in every process,
    unlike hash()), and where its three cells begin."""
    name = zlib.crc32(key.encode("utf-8", "surrogateescape")) + 1
    return float(name), name % SLOTS * 3


class PoolTimes:
    """The longest of the recent answers of each kind, as the worker that
    last answered one saw it, with when: a file of SLOTS × (kind, when,
    seconds) doubles in the generation's folder, mapped by every worker of
    the pool (forked from the master, or loading the app themselves)."""

    def __init__(self, path: Path):
        size = SLOTS * 3 * 8
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Blocks taken now, not at the first write: a page of a sparse
            # file on a full RUNTIME_DIR kills the worker writing it (SIGBUS).
            os.posix_fallocate(fd, 0, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.cells = memoryview(self.map).cast("d")

    def write(self, key: str, seconds: float) -> None:
        name, at = slot(key)
        cells = self.cells
        cells[at + 1], cells[at + 2], cells[at] = monotonic(), seconds, name

    def read(self, key: str, now: float) -> float:
        """Seconds the pool's answers of this kind took lately, 0 if none."""
        name, at = slot(key)
        cells = self.cells
        if cells[at] != name or now - cells[at + 1] > BELIEVED:
            return 0.0
        return cells[at + 2]


def kind(environ) -> str:
    """A request's kind: its method and path, each segment with a digit in
    it one placeholder (/users/12 and /users/34 alike)."""
    path = environ.get("PATH_INFO", "")
    if DIGIT.search(path):
        path = "/".join("#" if any(char.isdigit() for char in part) else part for part in path.split("/"))
    return f"{environ.get('REQUEST_METHOD', '')} {path}"


class AnswerTimes:
    """Seconds this worker's recent answers took to start, by kind, from
    the moment the wrapper had the request to its answer's first part."""

    def __init__(self):
        self.recent: dict[str, deque[float]] = {}
        self.pool: PoolTimes | None = None
        self.refusals = Refusals("its answer could not have started within REQUEST_TIMEOUT: it waited for "
                                 "a worker for longer than REQUEST_TIMEOUT less the time answers of its "
                                 f"kind take to start (the longest of this worker's last {KEPT} or the "
                                 "pool's latest word, and a quarter)")

    def took(self, environ, seconds: float) -> None:
        """A request's answer started (the usual answer's first part)."""
        key = kind(environ)
        recent = self.recent.get(key)
        if recent is None:
            if len(self.recent) >= KINDS:
                return
            recent = self.recent[key] = deque(maxlen=KEPT)
        recent.append(seconds)
        if self.pool is not None:
            self.pool.write(key, max(recent))

    def shared_in(self, path: Path) -> None:
        """The pool's record of answer times, at `path` (the generation's
        folder): written at each answer, read beside the worker's own.
        Without it (a folder it cannot write), each worker goes by its own."""
        try:
            self.pool = PoolTimes(path)
        except (OSError, ValueError):
            self.pool = None

    def expected(self, environ, running=()) -> float:
        """Seconds an answer of this request's kind takes to start, with the
        margin; 0 if not known. The requests of its kind still running
        (`running`: the watchdog's, each with when its handler began) count
        with what they have taken so far: a machine that slows down shows
        there first, seconds before their answers say so."""
        key = kind(environ)
        now = monotonic()
        recent = self.recent.get(key)
        longest = max(recent) if recent else 0.0
        if self.pool is not None:
            longest = max(longest, self.pool.read(key, now))
        for request in list(running):
            since = request.since
            if since is not None and now - since > longest and kind(request.environ) == key:
                longest = now - since
        return longest * MARGIN

    def too_late(self, environ, waited: float, limit: float, running=()) -> bool:
        """Whether a request that waited this long could not be answered
        within `limit` (REQUEST_TIMEOUT), its answer taking what answers of
        its kind take (expected())."""
        expected = self.expected(environ, running)
        return expected > 0.0 and waited + expected > limit


# A gevent worker takes every request at once: a wait is not a queue's.
NEVER = AnswerTimes()
