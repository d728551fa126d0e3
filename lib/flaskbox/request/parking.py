"""ADAPTIVE_THREADS' threads the limit does not need, kept out of uWSGI's
accept loop (admission.py decides the limit; this is where its surplus
threads wait).

Every thread of a uWSGI worker takes connections from the socket the
processes share, one after another, in C. Left there, a worker's free
threads took requests over its limit into its own line while another
worker had places: with two workers, the slowest percent of a page that
computes all came from one of them, its p99 1.7 times gunicorn sync's
(docs/BENCHMARKS.md, "Pages that compute"). So a thread past the limit
parks after its answer has gone (uWSGI's after-request hook, its Python
API's `uwsgi.after_req_hook`), and the requests over the limit wait in the
shared socket's queue for whichever worker has a place. A thread whose
answer was made whole counts as back in the loop from the moment it gives
its place back: at a limit of 20 of 32, waking a parked thread for that
place, and parking the thread that came back, or keeping one more thread
whose request waited in the worker's line, was a hand-over between two
threads for half of a waiting page's requests (docs/BENCHMARKS.md,
"Against its floor"). The usual thread, wanted back in the loop, sees so
without the lock (a stale look only leaves a thread there until its next
answer), and the requests served are counted without it too.

A parked thread goes back to uWSGI's loop when the limit rises, one for
each thread wanted, the last parked first, whichever thread's look saw it
(waking every parked thread for each free place cost a fast page with the
limit at 5 of 32 two-fifths of its answers: docs/BENCHMARKS.md, "Against
its floor"; and each thread keeps its own state, a connection or a cache:
with any looking thread going back itself, 11 to 20 of a CKAN-shaped
worker's 32 threads served every 5 s at a limit of about two, and the
last parked first, 4 or 5), and when its worker is to end, so that uWSGI
can end it: at a stop or a reload's retirement (the arbiter's first
notice, stopping.py), at a retirement of the watchdog's (guards.py), and
before uWSGI's own max-requests recycle (its requests counted here). It
looks again every PARK_LOOK seconds, and its look ends a window in which
no request entered or left (the gate's decision: a request alone for
seconds still raises the limit). A thread whose answer was a 5xx does not
park: uWSGI writes that answer's log line once the thread leaves the hook
(where uWSGI logs every answer, no thread parks).

Only uWSGI's public hook and this module's own locks are used; a new
worker's threads all take their first request, then park.
"""

from __future__ import annotations

import itertools
import threading
from threading import get_ident

# The requests served before a recycle, for a worker uWSGI never recycles.
NEVER = 1 << 62
# Seconds between a parked thread's looks, beside being told: told to end
# by a signal handler on a thread that held the lock, it goes within this.
PARK_LOOK = 1.0


class Parking:
    """A worker's parked threads; the gate (admission.Gate) sets `lock` (the
    gate's), `threads`, `limit`, `inside`, `out` and `line`, adds to `sent` the
    thread of a request that gives its place back and sends on, calls
    looked() whenever its places or its limit change (but for a whole
    answer's place: its thread is back in the loop for it), and has
    looking() for a parked thread's own look."""

    def reset_parking(self) -> None:
        self.parked = 0
        # Requests served: next() is one step in C, under Python's lock (no lock of ours).
        self.served = itertools.count(1)
        # Each parked thread's own lock, the last parked last: one is
        # released for each thread wanted back (woken: released, not yet back).
        self.sleepers: list[threading.Lock] = []
        self.woken = 0
        self.sent: set[int] = set()  # threads whose request gave its place back, until uWSGI's hook
        self.ending = False
        # Requests served past which uWSGI recycles the worker (max-requests): 0, not known yet.
        self.recycle_at = 0
        self.lines: set[int] = set()  # threads whose answer was a 5xx: uWSGI logs it as they leave the hook

    def short(self) -> int:
        """Under the lock: threads wanted in uWSGI's accept loop and not
        there (negative: too many). Wanted: one for each free place. There:
        every thread neither parked nor holding a place, waiting in the
        line, or sending an answer (a stream: its place given back, its
        thread its own)."""
        # max(limit - inside, 0) wanted, less the threads there; `inside` is
        # in both but for the places held over a limit that fell. A request
        # whose place is lent (`out`) keeps its thread.
        limit, inside = self.limit, self.inside
        return (limit if limit > inside else inside) + self.out + self.parked + len(self.line) \
            + len(self.sent) - self.threads

    def wanted(self) -> bool:
        """Whether uWSGI's loop wants the thread back (short() >= 0); every
        thread is wanted while the limit and the parked threads make up all
        the threads, which is told without counting the rest."""
        return self.limit + self.parked >= self.threads or self.short() >= 0

    def looked(self) -> None:
        """Under the lock: places or the limit changed: as many parked
        threads as are wanted back are woken."""
        if self.sleepers:
            self.wake(self.short() - self.woken)

    def wake(self, wanted: int) -> None:
        """Under the lock: `wanted` parked threads woken, the last parked first."""
        while wanted > 0 and self.sleepers:
            self.sleepers.pop().release()
            self.woken += 1
            wanted -= 1

    def owes_line(self) -> None:
        """This thread answers a 5xx (request.Request.start_response)."""
        self.lines.add(get_ident())

    def after_request(self) -> None:
        """uWSGI's after-request hook, in the thread that served: one the
        accept loop does not want parks until it does, or the worker is to end."""
        served = next(self.served)
        # The usual answer: nothing sent on, no 5xx, no recycle near and no
        # thread to park (read without the lock: one left in the loop parks
        # after its next request; one short is looked at again under it).
        if not self.sent and not self.lines and served < self.recycle_at and (
                self.limit + self.parked >= self.threads or self.short() >= 0):  # wanted(), written out
            return
        ident = get_ident()
        with self.lock:
            self.sent.discard(ident)
            if served >= self.recycle_at:
                self.recycling(served)
            if self.lines and ident in self.lines:
                self.lines.discard(ident)
                return  # its 5xx's log line is written as it leaves: it stays
            if self.ending or not self.parks or self.wanted():
                return  # parked, it would leave the loop short of one: it stays
            self.parked += 1
            sleeper = threading.Lock()
            sleeper.acquire()
            self.sleepers.append(sleeper)
            try:
                while not self.ending:
                    self.lock.release()
                    try:
                        sleeper.acquire(timeout=PARK_LOOK)
                    finally:
                        self.lock.acquire()
                    if sleeper in self.sleepers:
                        # Not woken: its own look, which may end a window;
                        # the threads wanted are woken, the last parked first
                        # (it too, if it is that one).
                        self.looking()
                        self.looked()
                        if sleeper in self.sleepers:
                            continue
                    self.woken -= 1
                    if self.ending or self.short() > 0:
                        break
                    sleeper.acquire(blocking=False)  # not wanted after all: parked again, the last
                    self.sleepers.append(sleeper)
            finally:
                self.parked -= 1
                if sleeper in self.sleepers:
                    self.sleepers.remove(sleeper)

    def recycling(self, served: int) -> None:
        """Under the lock: the requests served reached recycle_at (at the
        first, not known yet: it is learnt)."""
        if not self.recycle_at:
            self.recycle_at = self.recycles()
            if served < self.recycle_at:
                return
        if not self.ending:
            self.ending = True
            self.wake(len(self.sleepers))

    def end(self) -> None:
        """The worker is to end: every parked thread goes back to uWSGI, which
        ends it. Called from a signal handler too (stopping.py), perhaps on a
        thread that holds the lock: told now if it is free, else within PARK_LOOK."""
        self.ending = True
        if self.lock.acquire(blocking=False):
            try:
                self.wake(len(self.sleepers))
            finally:
                self.lock.release()
