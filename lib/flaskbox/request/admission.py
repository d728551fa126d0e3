"""ADAPTIVE_THREADS: how many of its UWSGI_THREADS requests a sync worker
runs at once.

The rule: every tenth of a second, a worker's limit becomes the places its
requests used at their time alone, plus the square root of that:

    limit = used + sqrt(used),  used = limit x min(1, (their times alone) / (their place-time))

A request holds a place from being let in to its answer's start. Its time
alone is what a request of its kind takes with the worker to itself
(deadline.Kind.alone). Over the window, the requests' times alone against
the place-time they held is how much of it did useful work: all of it
while requests only wait (a database, an API: the limit grows by its
square root each window, up to every thread), one part in n while n
requests take turns at Python's lock or share a CPU with each other, a
neighbour or a quota (the limit settles at about two a process). Sums,
not each request's own share: a page whose times vary has requests
faster than its mean as well as slower, and only the sums cancel them. A
request still in counts what it has held so far (turn). That one
measure covers every cause of waiting, as the latency-gradient limiters do
it: Netflix's concurrency-limits (Gradient2, Vegas) and Envoy's adaptive
concurrency filter scale their limit by a latency's floor over its present
value and add the square root of the limit as headroom. Here the floor is
kept per kind of request, since a page's and a login's times differ by
hundreds.

A request over the limit waits for a place in arrival order, for as long
as its answer could still start within REQUEST_TIMEOUT taking its kind's
usual time (deadline.py); then it is refused with 503. A new worker starts
at one request at a time (START), so that its first requests measure their
kinds alone. A worker whose limit is below its threads and that has run no
request alone for REMEASURE seconds runs at one until ALONE_KEPT requests
have run alone (a kind's time alone anew; a window at most), then goes
back to its limit: a kind's time alone measured before its database
slowed would otherwise hold the limit down for good (Envoy re-measures its
floor so too). A request of a kind not yet measured alone stands for its
time alone with its own time if it had the worker to itself, else with its
own thread's CPU time.

A request past its kind's time alone (or of a kind not measured alone
yet) whose thread used next to no CPU over a window waits outside (a row
lock, a remote call): its place is lent to the next in line until its
thread computes again or it leaves; that wait is neither contention nor
work. Counted as contention, stalls held the limit at one or two, the
worker let nobody else in, and a burst's last got 503 (docs/production.md).

Nothing here reads /proc or reaches into uWSGI: it runs in the request's
own thread, at its entry and its leaving (and while it waits in the
line, each window, and in a parked thread's look), under one lock, and
reads another thread only by its CPU clock (POSIX's
pthread_getcpuclockid); the watchdog gives back the place of a request it
answered 504 (guards.py).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from math import sqrt
from threading import get_ident
from time import clock_gettime, monotonic, pthread_getcpuclockid, thread_time

from ..layout import SYNC, Generation
from . import stopping
from .deadline import ALONE_KEPT, PENDING, Times
from .parking import NEVER, Parking

# How often the limit is decided: Envoy's adaptive concurrency default
# (concurrency_update_interval, 100 ms); shorter than a page, longer than a
# hello world.
WINDOW = 0.1
# A new worker's limit: its first requests each run alone and measure their
# kind's time alone (16 logins let in at once each took sixteen times as
# long: issue 69).
START = 1
# Seconds without a request run alone past which a worker below its threads
# runs one window at a limit of one (Envoy's is 60 s; these are cheaper, a
# window of 0.1 s, and a database that slowed is found within them).
REMEASURE = 5.0
# The share of a window a thread computed in below which its request waits
# outside (outside()): 0.05 %, between the 0.008 % a thread blocked in a
# read, a sleep or a lock's wait used and the 0.5 % of one waiting for
# Python's lock, which wakes each 5 ms to ask for it (docs/production.md, "Adaptive threads").
STILL = 0.0005


def thread_cpu(ident: int) -> float | None:
    """The CPU time of a thread of this process, None if the clock cannot be
    read. Only a live thread's may be asked for (a request's that holds its
    place: its thread leaves the place before it ends); a thread gone is
    ProcessLookupError, or undefined."""
    try:
        return clock_gettime(pthread_getcpuclockid(ident))
    except OSError:
        return None


class Turn:
    """A request waiting for a place: its lock is released to let it in."""

    __slots__ = ("let",)

    def __init__(self):
        self.let = threading.Lock()
        self.let.acquire()


class Gate(Parking):
    """The limit of one worker (made where the app is loaded; each fork
    starts its own, reset)."""

    limited = True

    def __init__(self, threads: int, times: Times, generation: Generation | None = None, parks: bool = True,
                 recycles=lambda: NEVER, running: dict | None = None):
        self.threads = threads
        self.times = times
        # The requests running, by thread (the watchdog's registry: guards.Watchdog.running).
        self.running = {} if running is None else running
        self.generation = generation  # where the limit is said (gate-PID), for an operator
        self.parks = parks  # surplus threads park (not where uWSGI logs every answer: parking.py)
        self.recycles = recycles  # the requests a worker serves before uWSGI recycles it
        self.reset()
        os.register_at_fork(after_in_child=self.reset)
        stopping.ENDING.append(self.end)

    def reset(self) -> None:
        self.lock = threading.Lock()  # a fork may have copied it held
        self.reset_parking()
        self.limit = min(START, self.threads)
        self.inside = 0  # places held, or given to a request in the line
        self.out = 0  # requests waiting outside, their places lent (outside())
        self.entries = 0  # requests let in so far: one let in alone is alone if still the last
        self.line: deque[Turn] = deque()
        self.places: set = set()  # the requests holding a place (what turn() counts of each: request.py)
        self.window = self.alone_at = monotonic()
        # This window's place-time, and the part of it within the requests' times alone.
        self.held = self.within = 0.0
        self.kept = 0  # during a window at one: the limit to go back to
        self.anew = 0  # during a window at one: the requests run alone in it
        self.said = 0

    def take(self, request) -> bool:
        """A place at once, if one is free and nobody waits for one (the
        usual request: nothing else to decide)."""
        times = request.times
        if times is None:
            times = request.times = self.times.at_entry(request.environ)
        lock = self.lock
        lock.acquire()  # (not `with`: its exit call costs as much again, on every request)
        try:
            now = monotonic()
            if now - self.window >= WINDOW:  # looking(), written out: every request comes this way
                self.turn(now)
            inside = self.inside
            if inside >= self.limit or self.line:
                return False
            self.inside = inside = inside + 1  # let_in(), written out as looking() is
            self.entries = entries = self.entries + 1
            if inside == 1:
                request.entry = entries
            request.entered = now
            if not times.alone:
                request.cpu = thread_time()
            self.places.add(request)
            return True
        finally:
            lock.release()

    def enter(self, request, left: float) -> bool:
        """A request this worker took: True once it holds a place, False if
        none came within `left` seconds (REQUEST_TIMEOUT less what it has
        waited and its kind's usual time: refused)."""
        return self.take(request) or self.wait(request, left)

    def wait(self, request, left: float) -> bool:
        """A request take() found no place for: in line for one, for at most `left` seconds."""
        if left <= 0:
            return False
        turn = Turn()
        with self.lock:
            if self.inside < self.limit and not self.line:  # one came free meanwhile
                self.inside += 1
                self.let_in(request, request.times, monotonic())
                return True
            self.line.append(turn)
            until = monotonic() + left
        # Those in line end the windows no request enters or leaves in (a
        # new worker's first request, alone for minutes, raises the limit).
        while not turn.let.acquire(timeout=min(WINDOW, max(until - monotonic(), 0.0))):
            with self.lock:
                if turn not in self.line:
                    break  # let in meanwhile: its place is held
                if monotonic() >= until:
                    self.line.remove(turn)
                    return False
                self.looking()
        with self.lock:
            self.let_in(request, request.times, monotonic())
        return True

    def let_in(self, request, times, now: float) -> None:
        """Under the lock: the request holds the place counted for it in `inside`."""
        self.entries += 1
        if self.inside == 1:
            request.entry = self.entries
        request.entered = now
        if not times.alone:
            request.cpu = thread_time()
        self.places.add(request)

    def too_late(self, request, now: float) -> bool:
        """Whether a request that has waited request.waited would run past
        REQUEST_TIMEOUT, taking its kind's usual time and its spread."""
        if request.times is PENDING:  # its route may have been learnt while it waited
            request.times = self.times.at_entry(request.environ)
        return self.times.too_late(request.times, request.waited, now)

    def forgo(self, request) -> None:
        """A request let in that will not run after all (refused or skipped
        as it got its place): its place to the first in line, no time to its kind."""
        if request.entered is not None:
            with self.lock:
                request.entered = None  # (under the lock: turn() reads it of every place)
                self.inside -= 1  # (never lent: not yet in the watchdog's registry)
                self.places.discard(request)
                self.admit()

    def leave(self, request, ident: int | None = None, whole: bool = False) -> None:
        """The request's answer has started (or it ended, or the watchdog
        answered it 504: `ident`, its thread): its place goes to the first in
        line, its time to its kind. `whole`: the answer is made, and its
        thread goes straight back to uWSGI's accept loop; else it sends for
        as long as its client takes (a stream), or runs on (a 504)."""
        if request.entered is None:
            return
        lock = self.lock
        lock.acquire()  # (not `with`: as take())
        try:
            entered = request.entered
            if entered is None:
                return  # the watchdog's and its own thread's, at once
            request.entered = None
            now = monotonic()
            if self.out and request.lent:  # (`out` first: a class's field read costs 0.2k instructions)
                self.out -= 1
                request.counted = now - entered  # its last stretch out is not contention either
            else:
                self.inside -= 1
            if not whole:
                self.sent.add(get_ident() if ident is None else ident)  # it sends its answer (parking.py)
            self.places.discard(request)
            took = now - entered
            times = request.times
            if times is PENDING:
                times = request.times = self.times.at_leave(request)
            # Alone, and answered by its own thread: a 504's time is its timeout, not its kind's time alone.
            by_itself = request.entry == self.entries and ident is None
            alone = times.alone
            if not alone and by_itself:
                alone = took
            elif not alone and ident is None:
                # A kind not yet measured alone: its time if it had the
                # worker to itself, else its own CPU time (counted as in their
                # time, many of a new kind let in at once each looked so and
                # let more in; its time less the CPU of the process's other
                # threads, or the process's idle CPU, took a neighbour's or a
                # quota's CPU for a wait of its own: 503s and 504s). One that
                # only waits shows late until one alone measures its kind.
                alone = thread_time() - request.cpu
            self.held += took - request.counted
            credited = request.credited
            if alone > credited:
                self.within += alone - credited
            if by_itself:
                self.alone_at = now
            self.times.took(times, took, by_itself, now)
            if now - self.window >= WINDOW:
                self.turn(now)
            elif self.kept and by_itself:
                # The window at one has its measure once a kind's time alone
                # is made anew: the limit back at once (a whole window at one
                # queued a 5 ms page's requests 0.1 s; after one request
                # alone, a query slowed from 5 to 20 ms was still counted at
                # 10, and its limit stayed low for three rounds of REMEASURE).
                self.anew += 1
                if self.anew >= ALONE_KEPT:
                    self.limit, self.kept = self.kept, 0
                self.admit()  # the next in line, alone in its turn (or the places the limit gave back)
            elif self.line or not whole:  # (a whole answer's thread is back in uWSGI's loop: none wanted)
                self.admit()
        finally:
            lock.release()

    def turn(self, now: float) -> None:
        """Under the lock: the window ends, and the rule sets the next one's
        limit, from the requests that left in it and those still in: these
        count the place-time they have held so far, and the part of it within
        their time alone (pages of 2 s that only wait raise the limit each
        window, not once a round). For one whose kind is not measured yet,
        that part is all of it while it has the worker to itself (a new
        worker's first request, an export of minutes, does not hold the
        limit at one); else it is counted as it leaves (leave())."""
        held, within = self.held, self.within
        by_itself = len(self.places) == 1
        try:
            running = list(self.running.items())  # (as the watchdog reads it)
        except RuntimeError:  # changed as it was copied: no lending this window
            running = []
        for ident, request in running:
            if request in self.places and now - request.entered > request.times.alone:
                self.outside(request, ident, now)
        for request in self.places:
            alone = request.times.alone
            elapsed = now - request.entered
            if request.lent:
                # Its wait outside is neither contention nor work.
                request.counted, request.credited = elapsed, alone
            elif alone or by_itself:
                good = elapsed if not alone or elapsed < alone else alone
                held += elapsed - request.counted
                request.counted = elapsed
                if good > request.credited:  # (a lent one was credited its kind's time alone as it was then)
                    within += good - request.credited
                    request.credited = good
        self.window, self.held, self.within = now, 0.0, 0.0
        if self.kept:
            self.limit, self.kept = self.kept, 0  # the window at one is over
        elif held > 0.0:
            used = self.limit * min(1.0, within / held)
            self.limit = max(1, min(self.threads, round(used + sqrt(used))))
        if self.limit < self.threads and now - self.alone_at > REMEASURE:
            self.kept, self.limit, self.alone_at, self.anew = self.limit, 1, now, 0
        self.admit()

    def outside(self, request, ident: int, now: float) -> None:
        """Under the lock, a request past its time alone (`ident`, its
        thread): whether it waits outside (a row lock, a remote call), its
        thread having used next to no CPU since the last window's end (STILL);
        its place is lent meanwhile, and taken back once its thread computes
        again. (A thread waiting for Python's lock wakes each 5 ms to ask for
        it; one waiting for a CPU gets some within a window.)"""
        cpu = thread_cpu(ident)
        if cpu is None:
            return
        seen, request.seen = request.seen, (cpu, now)
        if seen is None:
            return
        still = cpu - seen[0] < STILL * (now - seen[1])
        if still != request.lent:
            request.lent = still
            moved = 1 if still else -1  # a place from `inside` to `out`, or back
            self.inside -= moved
            self.out += moved
            if not still:
                self.entries += 1  # one let in meanwhile no longer runs alone

    def looking(self) -> None:
        """Under the lock: a look that ends a window in which no request
        entered or left (a parked thread's own, every PARK_LOOK: parking.py;
        one in the line's, each WINDOW): a request alone for seconds still
        raises the limit."""
        now = monotonic()
        if now - self.window >= WINDOW:
            self.turn(now)

    def idle(self, stuck: set) -> bool:
        """No place held or waited for, and no answer still sent on (where
        threads park: `sent`) but by the `stuck` threads (answered 504): a
        retiring worker may end (the watchdog's thread asks, under the lock)."""
        with self.lock:
            return not (self.inside or self.out or self.line or (self.parks and not self.sent <= stuck))

    def admit(self) -> None:
        """Under the lock: the first in line let in while there are places,
        and a parked thread woken for each free place left (parking.py)."""
        while self.line and self.inside < self.limit:
            self.inside += 1
            self.line.popleft().let.release()
        self.looked()

    def report(self) -> None:
        """gate-PID: the limit, for an operator (docs/production.md), when it
        changed (not a window at one). The watchdog's thread calls this as it
        looks (guards.py): the file's write holds neither the lock nor a request."""
        limit = self.limit
        if limit != self.said and not self.kept:
            self.said = limit
            if self.generation is not None:
                self.generation.say_gate(os.getpid(), limit)


def gated(settings) -> bool:
    """Whether the gate runs, from the record (typed): sync workers of more
    than one thread, ADAPTIVE_THREADS on, and not STICKY_CLIENTS, whose
    processes each have a socket of their own: a request left waiting could
    not go to another process, so every thread takes one."""
    return (settings["WORKER_CLASS"] == SYNC and settings["ADAPTIVE_THREADS"]
            and int(settings["UWSGI_THREADS"]) > 1 and not settings["STICKY_CLIENTS"])
