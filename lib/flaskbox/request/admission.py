"""ADAPTIVE_THREADS: each sync worker runs only as many requests at once as
keep it busy, out of its UWSGI_THREADS. Sixteen threads a process suit
requests that wait; requests that compute take turns at Python's lock, or,
outside it (a password hash), share out the CPUs until every one misses its
deadline together (issue 69). No fixed count wins both.

Each worker measures, over each window between the watchdog's ticks (half a
second by default): how often Python's lock was taken (the watchdog's
thread times getting it back, lock_wait: microseconds while requests wait
on I/O, the switch interval or more while one computes); the CPU the
process used and how long its threads waited for a CPU (cpu_meter: the
kernel's run delay, a neighbour's load and its own threads alike); how long
requests waited for a worker; whether every thread let in holds a request.
What the figures say (lower, raise, hold, or rest at none while the
others cover the CPUs) is gate_rule.py's. A new worker starts at one
(START), and two seconds with no request set it back there, its parked
threads left parked (IDLE_WINDOWS). A request taken over the limit waits in
the worker's line, unless every request let in only waits, or a CPU would
otherwise stay idle (spare_cpu); while one does, the worker takes no more
from the socket (accepting.py).

The threads the limit does not need park (parking.py): a request over it
waits in the socket's queue that all the processes share.
"""

from __future__ import annotations

import os
import threading
import time

from ..host import Host
from ..layout import SYNC, Generation
from ..log import log
from .accepting import Accepting
from .cpu_meter import CpuMeter, lock_wait, others_running, ran, runnable
from .gate_rule import COMPUTES, CPU_WAIT_FEW, CPU_WAIT_MOST, FREE_MOST, Decision
from .parking import Parking
from .stop_pipe import open_pipes, stop_pipe

# The lock wait that says another thread holds the lock to compute: a fifth
# of CPython's switch interval (5 ms), fifty times the wait of a free lock
# (docs/BENCHMARKS.md, "Adaptive threads").
CONTENDED = 0.001
# How often the watchdog's thread probes the lock between ticks: five a window, each taking it twice.
PROBE_EVERY = 0.1
# Windows in a row with no request (two seconds) that set the limit back to
# START, the next load measured afresh (a search's 16, kept, let the next
# logins in 16 at once: 15 ran past their deadline). Parked threads stay
# parked (let go, each took a request into its line), unless one answered
# a 5xx, whose log-5xx line uWSGI writes once it leaves the hook.
IDLE_WINDOWS = 4
# A request that has computed this long (its thread's CPU: an export, a
# report; sixteen short pages taking turns take seconds each, and are not
# long): once every thread let in holds one, the limit doubles anyway.
LONG = 0.5
WINDOW = 0.25  # the shortest window a decision is made on (the watchdog ticks every 0.5 s)
# A request over the limit, between windows: it gets in at once while every
# request let in has only waited (its thread ran for less than this share
# of its time inside, over this many seconds at least, and is asleep, not
# ready to run), looked at every RECHECK seconds while it waits. (By CPU
# share alone, logins starved of CPU by a neighbour's burst looked as if
# they waited: the limit doubled again and again, 36 logins ran at once,
# and each answered 504.)
IDLE_SHARE, WAITING_AFTER, RECHECK = 0.1, 0.01, 0.02
# How long a request behind the first in line sleeps untold (a place freed,
# the line moved, the limit changed wake it), at most: under overload sixty
# looking every RECHECK took Python's lock 3,000 times a second.
UNTOLD = 0.5
# Looks in a row (RECHECK apart) that must find a CPU idle before a request
# runs over the limit: a look is an instant, and a neighbour's busy thread
# leaves a CPU for moments (docs/BENCHMARKS.md, "Overload").
SPARE_LOOKS = 5
# Where a new worker's limit starts, and where two seconds with no request
# set it back to: one request runs at once until the first window has
# measured them (16 logins at once each took sixteen times as long: issue
# 69); from there it grows, a window at a time, while requests queue and
# the lock and the CPUs have room: fourfold while both are nearly idle
# (16 within two windows, for requests that wait), else twofold.
START = 1


class Admission(Parking):
    """The gate of one worker's threads (made once, where the app is
    loaded; each worker starts its own at its first request, started())."""

    def __init__(self, threads: int, known: frozenset[str], quota: float | None,
                 generation: Generation | None = None, cpus: int = 0, every_line: bool = False):
        self.threads = threads
        self.every_line = every_line  # uWSGI logs more than 5xx (pool/wsgi.logs_more_than_5xx)
        self.cpus = cpus  # the CPUs the container may use (0: none counted, spare_cpu never says yes)
        # Where each worker's limit and parked threads are said (gate-PID), for an operator and
        # for metrics.py, which counts a parked thread (uWSGI still calls it in a request) as idle.
        self.generation = generation
        self.quota = quota  # the container's CPU quota: its throttling is a wait for a CPU
        # The pipes open when the app was loaded: uWSGI's stop pipe is one
        # a worker makes after them (core/uwsgi.c, uwsgi_ignition).
        self.known = known
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)  # a place in the limit freed, or the limit raised
        self.pid = 0
        self.reset()

    def reset(self) -> None:
        self.limit = min(START, self.threads)
        self.reset_parking()
        self.waiting: list[object] = []  # the requests waiting for a place, first come first
        # None taken from the pool's socket while some wait (accepting.py).
        self.accepting = Accepting(self.generation and str(self.generation.dir), self.threads)
        self.meter = None
        self.waits = 0.0
        self.arrived = self.probes = self.taken = self.ended = 0
        # The requests let in now (each a thread's): their kernel id, their CPU time then, and when.
        self.inside: dict[int, tuple[int, float, float]] = {}
        self.since = None
        self.checked = self.looked = 0.0  # when all_waiting, spare_cpu last looked
        self.spare = 0  # spare_cpu's looks in a row that found a CPU idle
        self.cpus_busy = False  # the last window's: requests that compute waited for a CPU
        self.said = None  # said at once (started()): a new worker's gate is seen from its start
        self.free_before = True  # the lock was free in the last window
        self.idle = 0  # windows in a row with no request

    def started(self, request: bool = True) -> None:
        """The worker's first thread uWSGI starts, or its first request: its
        gate's pipe and uWSGI's stop pipe found; at its first request, the
        first window begun (from the threads' start, it decided at once)."""
        if self.pid == os.getpid() and (self.meter is not None or not request or self.wake_r is None):
            return
        with self.lock:  # its first requests come on several threads at once
            if self.pid != os.getpid():
                self.reset()
                self.stop_fd = stop_pipe(self.known)
                if self.stop_fd is None:
                    log(f"worker pid {os.getpid()} runs all its {self.threads} threads (ADAPTIVE_THREADS): "
                        "uWSGI's stop pipe, which would wake a parked thread at a reload, is not the one "
                        "new pipe here")
                    self.limit = self.threads
                else:
                    self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                    if self.generation is not None:
                        self.open_release(self.generation.release)
                self.pid = os.getpid()
                self.say()
            if request and self.wake_r is not None and self.meter is None and not self.stopping:
                self.since = time.monotonic()
                self.meter = CpuMeter(self.quota)

    def enter(self, waited: float, limit: float, expected) -> float | None:
        """A request this worker took, having waited `waited` seconds for
        one: it runs once it has a place in the limit. Over it (a new worker,
        or a limit lowered under its requests), it waits for a place, in
        arrival order, while its answer could still start within `limit`
        (REQUEST_TIMEOUT), taking `expected()` seconds (request/deadline.py).
        Returns the seconds it waited here, or None if no place freed in
        time. A gate that is off (no stop pipe found, or the gate failed)
        lets every request in at once."""
        self.started()
        ident = threading.get_ident()
        with self.room:
            began = time.monotonic()
            if len(self.inside) >= self.places() and self.since is not None and not self.wait_turn(
                    lambda now: limit - waited - (now - began) - expected()):
                return None
            self.inside[ident] = (threading.get_native_id(), time.thread_time(), time.monotonic())
            here = time.monotonic() - began
        self.waits += waited + here
        self.arrived += 1
        return here

    def wait_turn(self, left) -> bool:
        """Under the lock: wait for a place, first come first in, while
        `left(now)` says there is time left. Through a stop too, each in its
        turn: let in at once, they would all run past their deadline
        together (and the stop's budget)."""
        turn = object()
        self.accepting.pause(self.threads - self.born)
        self.waiting.append(turn)
        try:
            while self.waiting[0] is not turn or len(self.inside) >= self.places():
                now = time.monotonic()
                if left(now) <= 0:
                    return False
                first = self.waiting[0] is turn
                if first and self.all_waiting(now):
                    continue
                if first and self.spare_cpu(now):
                    return True  # over the limit, on a CPU no one else would use
                # The first in line looks again soon (the estimate, and what
                # those let in do); the others when told, or at their deadline.
                self.room.wait(min(left(now), RECHECK if first else UNTOLD))
            return left(time.monotonic()) > 0
        finally:
            self.waiting.remove(turn)
            if not self.waiting:
                self.accepting.take()
            self.room.notify_all()  # the next in line looks

    def places(self) -> int:
        """Requests let in at once: the limit; one at rest (0), for those taken before its threads parked."""
        return self.limit or 1

    def all_waiting(self, now: float) -> bool:
        """Under the lock, for a request over the limit, once a RECHECK at
        most: whether every request let in only waits (only_waits), none
        that computes waiting for a CPU in the last window. Then the limit
        doubles at once, and wakes a thread for one more: a page beside 80
        open streams waited 1.5 s for the windows."""
        if now - self.checked < RECHECK or not self.inside or self.cpus_busy:
            return False
        self.checked = now
        if not all(only_waits(request, now) for request in self.inside.values()):
            return False
        self.limit = min(self.threads, self.places() * 2)
        self.unpark(self.wanted() - self.free())
        return True

    def spare_cpu(self, now: float) -> bool:
        """Under the lock, for the first request over the limit, one at a
        time: whether a CPU the container may use has been idle for
        SPARE_LOOKS looks in a row (fewer threads running or ready to run on
        the machine than its CPUs), none waited for in the last window. A
        line is one process's, the CPUs the pool's."""
        if not self.cpus or self.cpus_busy or now - self.looked < RECHECK or len(self.inside) > self.places():
            return False
        self.looked = now
        others = others_running()
        self.spare = self.spare + 1 if others is not None and others < self.cpus else 0
        return self.spare >= SPARE_LOOKS

    def pause(self, seconds: float) -> None:
        """The watchdog's wait for its next tick, probing the lock meanwhile (a gate off just waits)."""
        if self.since is None:
            time.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(PROBE_EVERY, left))
            self.probes += 1
            self.taken += lock_wait() >= CONTENDED

    def tick(self, now: float) -> Decision | None:
        """From the watchdog's thread: a window's decision. The gate may
        fail (what /proc says, say); the watchdog, REQUEST_TIMEOUT's, may not."""
        try:
            return self.decide(now)
        except Exception as exc:
            log(f"worker pid {os.getpid()} runs all its threads from now on: ADAPTIVE_THREADS failed "
                f"({exc!r})")
            self.since = None
            self.stop()
            return None

    def decide(self, now: float) -> Decision | None:
        """A window's decision, once WINDOW has passed; none for a window
        with no request, and IDLE_WINDOWS of them let every parked thread
        go back to uWSGI, the limit back at START."""
        if self.since is None or now - self.since < WINDOW:
            return None
        inside = list(self.inside.values())
        self.idle = self.idle + 1 if not self.arrived and not inside else 0
        if self.idle:
            self.since, self.probes, self.taken, self.ended = now, 0, 0, 0
            self.meter.read()
            if self.idle >= IDLE_WINDOWS:
                self.set_limit(min(START, self.threads), unpark=self.threads if self.owed else 0)
            self.say()
            return None
        waited = self.waits / self.arrived if self.arrived else 0.0
        cpu, cpu_wait = self.meter.read()
        # CPU a request: the process's, over the window's requests (those still in took at least their share).
        computes = cpu / (self.ended + len(inside)) >= COMPUTES
        taken = self.taken / self.probes if self.probes else 0.0
        full = len(inside) >= self.limit
        held_long = full and sum(ran(tid) - then >= LONG for tid, then, _ in inside) >= self.limit
        waits = cpu_wait / cpu if cpu > 0 else 0.0
        # Only where this worker may rest, the others' limits (rests() reads them again under the pool lock).
        # Never with a request inside that only waits (a stream): no quiet spell would end that rest.
        others = self.generation.others_let_in(self.pid) if computes and self.limit == 1 and self.cpus \
            and waits >= CPU_WAIT_MOST and self.generation is not None \
            and not any(only_waits(request, now) for request in inside) else 0
        decision = Decision(taken, waits, waited, full, self.limit, self.threads, held_long, self.free_before,
                            computes, others, self.cpus)
        self.free_before = taken <= FREE_MOST
        self.cpus_busy = computes and decision.cpu_wait > CPU_WAIT_FEW
        self.since, self.waits, self.arrived, self.probes, self.taken, self.ended = now, 0.0, 0, 0, 0, 0
        if decision.limit or not self.rests():
            self.set_limit(decision.limit or 1)
        return decision

    def set_limit(self, limit: int, unpark: int = 0) -> None:
        """The new limit: the requests waiting for a place told, and as many
        parked threads woken as it wants free, or `unpark` (under the lock,
        so that a thread about to park sees it first)."""
        with self.room:
            self.limit = limit
            self.room.notify_all()
            self.unpark(max(unpark, self.wanted() - self.free()))
        self.say()

    def say(self) -> None:
        """gate-PID: "limit parked held", when any changed since last said:
        the threads parked after an answer (uWSGI counts them in a request:
        metrics.py), and those held before their first accept (it counts idle)."""
        state = (self.limit, self.parked - self.born, self.born)
        if self.generation is not None and state != self.said:
            first, self.said = self.said is None, state
            self.generation.say_gate(self.pid, *state, first)

    def rests(self) -> bool:
        """Whether this worker rests (limit 0, gate_rule.py): one in its line at most (the one its free
        thread over the limit took, parking.wanted, runs next, at places(); a longer line no other
        worker could take), the others still let in as many as the CPUs (read and said under the
        pool's lock). Refused while that one waited, workers beside three busy loops rested a
        quarter as often, and logins ran past their deadline (docs/BENCHMARKS.md, "Third try")."""
        if len(self.waiting) > 1:
            return False
        try:
            with self.generation.gates_locked():
                if self.generation.others_let_in(self.pid) < self.cpus:
                    return False
                self.set_limit(0)
                return True
        except OSError:
            return False


def only_waits(request: tuple[int, float, float], now: float) -> bool:
    """Whether a request let in (its thread's kernel id, CPU time and the
    time it came in) has only waited so far, for a query, a client, a
    stream's next event: its thread ran less than IDLE_SHARE of its time
    inside, over WAITING_AFTER at least, and is asleep (a thread starved of
    CPU runs little too, but is ready to run)."""
    tid, cpu, began = request
    return now - began >= WAITING_AFTER and ran(tid) - cpu < IDLE_SHARE * (now - began) and not runnable(tid)


def gated(settings) -> bool:
    """Whether the gate runs, from the record (typed): sync workers of more
    than one thread, ADAPTIVE_THREADS on, and not STICKY_CLIENTS, whose
    processes each have a socket of their own: a request left waiting could
    not go to another process, so every thread takes one."""
    return (settings["WORKER_CLASS"] == SYNC and settings["ADAPTIVE_THREADS"]
            and int(settings["UWSGI_THREADS"]) > 1 and not settings["STICKY_CLIENTS"])


def for_worker(threads: int, generation: Generation, every_line: bool) -> Admission:
    """The gate, made where the app was loaded: the pipes open now are not uWSGI's stop pipe."""
    host = Host()
    return Admission(threads, frozenset(open_pipes().values()), host.cpu_quota(), generation, host.cpus(),
                     every_line)
