"""ADAPTIVE_THREADS: how many of its UWSGI_THREADS requests a sync worker
runs at once.

The rule: every tenth of a second, a worker's limit becomes the places its
requests used at their time alone, plus the square root of that:

    limit = used + sqrt(used),  used = limit x (place-time within time alone) / (place-time)

A request holds a place from being let in to its answer's start. Its time
alone is what a request of its kind takes with the worker to itself
(deadline.Kind.alone). Over the window, the share of the place-time spent
within each request's time alone is how much of it did useful work: all of
it while requests only wait (a database, an API: the limit grows by its
square root each window, up to every thread), one part in n while n
requests take turns at Python's lock or share a CPU with each other, a
neighbour or a quota (the limit settles at about two a process). That one
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
request alone for REMEASURE seconds runs one window at one, then goes back
to its limit: a kind's time alone measured before its database slowed
would otherwise hold the limit down for good (Envoy re-measures its floor
so too). A request of a kind not yet measured alone stands for its time
alone with its own thread's CPU time.

Nothing here reads /proc or reaches into uWSGI: it runs in the request's
own thread, at its entry and its leaving, under one lock.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from math import sqrt
from time import monotonic, thread_time

from ..layout import SYNC, Generation
from . import stopping
from .deadline import PENDING, Times
from .parking import Parking

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


class Turn:
    """A request waiting for a place: its lock is released to let it in."""

    __slots__ = ("let",)

    def __init__(self):
        self.let = threading.Lock()
        self.let.acquire()


class Open:
    """No limit (ADAPTIVE_THREADS=0, one thread, STICKY_CLIENTS): every
    request runs at once; its time is still kept for REQUEST_TIMEOUT's
    estimate (serve.Serve.waited_long)."""

    limited = False

    def __init__(self, times: Times):
        self.times = times

    def enter(self, request, left: float) -> bool:
        if request.times is None:
            request.times = self.times.at_entry(request.environ)
        request.entered = monotonic()
        return True

    def too_late(self, request, now: float) -> bool:
        return self.times.too_late(request.times, request.waited, now)

    @staticmethod
    def owes_line() -> None:
        return None

    def leave(self, request) -> None:
        entered = request.entered
        if entered is not None:
            request.entered = None
            now = monotonic()
            times = request.times = self.times.at_leave(request)
            self.times.took(times, now - entered, False, now)


class Gate(Parking):
    """The limit of one worker (made where the app is loaded; each fork
    starts its own, reset)."""

    limited = True

    def __init__(self, threads: int, times: Times, generation: Generation | None = None, parks: bool = True,
                 recycles=lambda: 1 << 62):
        self.threads = threads
        self.times = times
        self.generation = generation  # where the limit is said (gate-PID), for an operator
        self.parks = parks  # surplus threads park (not where uWSGI logs every answer: parking.py)
        self.recycles = recycles  # the requests a worker serves before uWSGI recycles it
        self.reset()
        os.register_at_fork(after_in_child=self.reset)
        stopping.ENDING.append(self.end)

    def reset(self) -> None:
        self.lock = threading.Lock()  # a fork may have copied it held
        self.reset_parking(threading.Condition(self.lock))
        self.limit = min(START, self.threads)
        self.inside = 0  # places held, or given to a request in the line
        self.entries = 0  # requests let in so far: one let in alone is alone if still the last
        self.line: deque[Turn] = deque()
        # id(request): [when let in, its time alone (0: not known yet: then its
        # thread's CPU time then), its time late already counted].
        self.places: dict[int, list[float]] = {}
        self.window = self.alone_at = monotonic()
        # This window's place-time of the requests that left (and the late part of those still in),
        # and the part of it within their time alone.
        self.held = self.within = 0.0
        self.kept = 0  # during a window at one: the limit to go back to
        self.said = 0

    def enter(self, request, left: float) -> bool:
        """A request this worker took: True once it holds a place, False if
        none came within `left` seconds (REQUEST_TIMEOUT less what it has
        waited and its kind's usual time: refused)."""
        times = request.times
        if times is None:
            times = request.times = self.times.at_entry(request.environ)
        with self.lock:
            now = monotonic()
            if now - self.window >= WINDOW:
                self.turn(now)
            if self.inside < self.limit and not self.line:
                self.inside += 1
                self.let_in(request, times, now)
                return True
            if left <= 0:
                return False
            turn = Turn()
            self.line.append(turn)
        if not turn.let.acquire(timeout=left):
            with self.lock:
                if turn in self.line:
                    self.line.remove(turn)
                    return False
            # let in meanwhile: its place is held
        with self.lock:
            self.let_in(request, times, monotonic())
        return True

    def let_in(self, request, times, now: float) -> None:
        """Under the lock: the request holds the place counted for it in `inside`."""
        self.entries += 1
        request.entry = self.entries if self.inside == 1 else 0
        request.entered = now
        self.places[id(request)] = [now, times.alone, 0.0, 0.0 if times.alone else thread_time()]

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
            request.entered = None
            with self.lock:
                self.inside -= 1
                self.places.pop(id(request), None)
                self.admit()

    def leave(self, request) -> None:
        """The request's answer has started (or it ended): its place goes to
        the first in line, its time to its kind."""
        entered = request.entered
        if entered is None:
            return
        request.entered = None
        with self.lock:
            now = monotonic()
            self.inside -= 1
            self.sending(threading.get_ident())
            _, alone, late, cpu = self.places.pop(id(request), (entered, 0.0, 0.0, 0.0))
            took = now - entered
            times = request.times = self.times.at_leave(request)
            if not alone:
                alone = times.alone
            if not alone:
                # A kind not yet measured alone: its own CPU time stands for
                # it. Counted as in its time, the many of a new kind let in at
                # once, computing beside each other, each looked so and let
                # more in; one that only waited shows late until one alone
                # (the limit at one) measures its kind.
                alone = thread_time() - cpu
            self.held += took - late
            self.within += alone if alone < took else took
            by_itself = request.entry == self.entries
            if by_itself:
                self.alone_at = now
            self.times.took(times, took, by_itself, now)
            if now - self.window >= WINDOW:
                self.turn(now)
            else:
                self.admit()

    def turn(self, now: float) -> None:
        """Under the lock: the window ends, and the rule sets the next one's
        limit, from the requests that left in it and those still in that
        are past their time alone: a request still in before that is not
        counted, for how it ends is not known yet (counted as in its time,
        the many let in at once under overload would each look so, and let
        more in)."""
        held, within = self.held, self.within
        for place in self.places.values():
            entered, alone, counted, _ = place
            late = now - entered - alone - counted if alone else 0.0
            if late > 0.0:
                held += late
                place[2] = counted + late
        self.window, self.held, self.within = now, 0.0, 0.0
        if self.kept:
            self.limit, self.kept = self.kept, 0  # the window at one is over
        elif held > 0.0:
            used = self.limit * within / held
            self.limit = max(1, min(self.threads, round(used + sqrt(used))))
        if self.limit < self.threads and now - self.alone_at > REMEASURE:
            self.kept, self.limit, self.alone_at = self.limit, 1, now
        self.admit()
        if self.limit != self.said and not self.kept:
            self.say()

    def admit(self) -> None:
        """Under the lock: the first in line let in while there are places,
        and a parked thread woken for each free place left (parking.py)."""
        while self.line and self.inside < self.limit:
            self.inside += 1
            self.line.popleft().let.release()
        self.looked()

    def say(self) -> None:
        """gate-PID: the limit, for an operator (docs/production.md), when it changed."""
        self.said = self.limit
        if self.generation is not None:
            self.generation.say_gate(os.getpid(), self.limit)


class Untimed:
    """gevent's workers: every request is taken at once, and REQUEST_TIMEOUT
    bounds the handler itself (serve.GeventServe): nothing to keep."""

    limited = False
    times = None

    @staticmethod
    def enter(request, left: float) -> bool:
        return True

    @staticmethod
    def leave(request) -> None:
        return None

    @staticmethod
    def owes_line() -> None:
        return None


def gated(settings) -> bool:
    """Whether the gate runs, from the record (typed): sync workers of more
    than one thread, ADAPTIVE_THREADS on, and not STICKY_CLIENTS, whose
    processes each have a socket of their own: a request left waiting could
    not go to another process, so every thread takes one."""
    return (settings["WORKER_CLASS"] == SYNC and settings["ADAPTIVE_THREADS"]
            and int(settings["UWSGI_THREADS"]) > 1 and not settings["STICKY_CLIENTS"])
