"""ADAPTIVE_THREADS: each sync worker runs only as many requests at once as
keep it busy, out of its UWSGI_THREADS.

Sixteen threads a process suit requests that wait (a query, an API, a slow
client): a waiting thread holds no CPU. Requests that compute do not gain
from running together: in Python's lock they take turns in 5 ms slices,
each waiting for all its neighbours, and the switching costs CPU
(docs/BENCHMARKS.md, "Pages that compute": 4 x 16 had a p99 of 1268 ms and
39.8 ms of CPU a page, 4 x 1 416 ms and 36.6 ms); outside it (a password
hash, a compression) they share out the CPUs, each slowed by all the others,
until every one of them misses its deadline together (Keystone's bcrypt,
issue 69: 20 logins of 20 answered 504). No fixed count wins both.

The rule: a process lets in fewer requests while the requests that compute
(COMPUTES: the process's CPU, every thread's, in the lock or out of
it, over the requests that ended) wait for Python's lock or for a CPU, and
more while requests queue for a worker and wait for neither. Each worker
measures, over each window between the watchdog's ticks (half a second by
default):

- how often Python's lock was taken: the watchdog's thread, while it waits
  for its tick, lets the lock go and times how long it takes to get it
  back (lock_wait): microseconds while the requests wait on I/O, the switch
  interval (5 ms) or more while one of them computes;
- the CPU the process used, and how long its threads waited for a CPU
  meanwhile (cpu_meter.CpuMeter: the kernel's run delay; a neighbour's load
  and the process's own threads alike);
- how long the requests that reached the worker had waited for one, and
  whether every thread let in holds a request (streams, long polls).

Requests that compute, the lock mostly taken, or their threads waiting for
a CPU longer than they run (CPU_WAIT_MOST): the limit is halved (quartered
when every probe found the lock taken). The lock nearly always free two
windows in a row, the threads of requests that compute seldom waiting for
a CPU (CPU_WAIT_FEW), and requests waited (QUEUED) or every thread let in
is held: the limit is doubled. Between the two it holds; 16 and 1 are some
two seconds apart either way. Every thread let in held by a request that
has computed for half a second (LONG) doubles it too. A new worker starts
at one (START), and two seconds with no request let every parked thread go
back to uWSGI and set it back there.

A thread over the limit parks once its request has been answered (uWSGI's
after-request hook runs after it closed the connection) and before it
takes another, so a waiting request stays in the socket's queue that all
the processes share, rather than behind one busy process. A raised limit
wakes parked threads (a byte each on the gate's pipe); a worker that uWSGI
stops (a reload, max-requests, cheaper mode) closes its loop's stop pipe,
whose hang-up wakes them all, as it wakes uWSGI's own threads.
"""

from __future__ import annotations

import os
import select
import threading
import time

from ..host import Host
from ..layout import SYNC, Generation
from ..log import log
from .cpu_meter import CpuMeter
from .stop_pipe import open_pipes, stop_pipe

TICK = os.sysconf("SC_CLK_TCK")
# The lock wait that says another thread holds the lock to compute: a fifth
# of CPython's switch interval (5 ms), fifty times the wait of a free lock
# (docs/BENCHMARKS.md, "Adaptive threads").
CONTENDED = 0.001
# How often the watchdog's thread probes the lock while it waits for its
# next tick: five probes in a window of half a second, each of which takes
# the lock from a request twice.
PROBE_EVERY = 0.1
# Of a window's probes: this share or more found the lock taken, it is
# contended; this share or less, it is free. Between, the limit holds.
TAKEN_MOST, FREE_MOST = 0.5, 0.1
# Requests that compute this long on average (CPU seconds of the process,
# every thread's, over the requests that ended: CPython's switch interval,
# a turn at the lock) are lowered for. Shorter ones end within their turn:
# 5 ms waits at 64 clients keep the CPUs as busy, and need every thread.
COMPUTES = 0.005
# Seconds the process's threads waited for a CPU for each second they ran:
# this much or more, the CPUs are oversubscribed (on 2 CPUs, four
# processes running one request each wait as long as they run: 1.0; two
# each, 3.0); this little or less, there is room for more at once.
CPU_WAIT_MOST, CPU_WAIT_FEW = 1.5, 0.5
# Seconds the requests that reached the worker waited for one, on average,
# that say more would have run at once had they been let in.
QUEUED = 0.002
# Windows in a row with no request at all (two seconds) that let every
# parked thread go back to uWSGI, so that none stays parked (uWSGI counting
# it in a request, its 5xx line unwritten) while nothing comes, and set the
# limit back to START: the next load is measured afresh. (Kept instead, a
# search's limit of 16 let the logins that came next in 16 at once, and 15
# of them ran past their deadline.)
IDLE_WINDOWS = 4
# A request that has computed this long (CPU seconds of its thread: an
# export, a report) no longer holds its place in the limit: once every
# thread let in holds one, the limit doubles, lock taken or not, so that a
# quick page is not left behind it. CPU, not time: sixteen short pages
# taking turns take seconds each, and are not long.
LONG = 0.5
# The shortest window a decision is made on (the watchdog ticks twice a
# second with the default REQUEST_TIMEOUT).
WINDOW = 0.25
# Where a new worker's limit starts, and where two seconds with no request
# set it back to: one request runs at once until the first window has
# measured them (16 logins at once each took sixteen times as long: issue
# 69); from there it grows, a window at a time, while requests queue and
# the lock and the CPUs have room: fourfold while both are nearly idle
# (16 within two windows, for requests that wait), else twofold.
START = 1


def thread_cpu(tid: int) -> float:
    """CPU seconds of this process's thread `tid` (its kernel id), 0 if gone."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def lock_wait() -> float:
    """Seconds this thread waited to take Python's lock back after letting
    it go for nothing (time.sleep(0)): some microseconds while the process's
    requests wait on I/O, about the switch interval (5 ms) or more while one
    of them computes."""
    begun = time.perf_counter()
    time.sleep(0)
    return time.perf_counter() - begun


class Decision:
    """One window's figures and what they say: lower, raise or hold.
    `cpu_wait`: seconds the process's threads waited for a CPU for each
    second they ran (cpu_meter.CpuMeter)."""

    def __init__(self, taken: float, cpu_wait: float, waited: float, full: bool, limit: int, threads: int,
                 held_long: bool = False, free_before: bool = True, computes: bool = False):
        self.taken, self.cpu_wait, self.waited = taken, cpu_wait, waited
        if held_long and limit < threads:
            self.limit = min(threads, limit * 2)
        # Requests that each compute for longer than a turn at the lock,
        # wherever they compute, and wait for the lock or for a CPU: more at
        # once only make each wait longer.
        elif computes and (taken >= TAKEN_MOST or cpu_wait >= CPU_WAIT_MOST) and limit > 1:
            # Taken in every probe, or waiting for a CPU four times as long
            # as that: a quarter, so that 16 become one in a second.
            self.limit = max(1, limit // (4 if taken >= 1.0 or cpu_wait >= 4 * CPU_WAIT_MOST else 2))
        # Requests waited, or none could have reached it: every thread let in
        # holds one (a stream, a long poll). The lock free for two windows in
        # a row (a page that lets it go for part of its work may leave it
        # free for the five probes of one), and CPUs to spare for the
        # requests that compute.
        elif taken <= FREE_MOST and free_before and not (computes and cpu_wait > CPU_WAIT_FEW) \
                and (waited >= QUEUED or full) and limit < threads:
            # Requests that hardly compute cost nothing more at once: fourfold.
            self.limit = min(threads, limit * (2 if computes else 4))
        else:
            self.limit = limit


class Admission:
    """The gate of one worker's threads (made once, where the app is
    loaded; each worker starts its own at its first request, started())."""

    def __init__(self, threads: int, known: frozenset[str], quota: float | None,
                 generation: Generation | None = None):
        self.threads = threads
        # Where each worker's limit and parked threads are said (gate-PID),
        # for an operator and for metrics.py, which counts a parked thread
        # (uWSGI still calls it in a request) as idle.
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
        self.parked = self.waiting = 0  # threads parked; requests waiting for a place
        self.stopping = False
        self.wake_r = self.wake_w = self.stop_fd = self.meter = None
        self.waits = 0.0
        self.arrived = self.probes = self.taken = self.ended = 0
        self.cpu = 0.0  # the process's CPU seconds in the window
        # The requests let in now (each a thread's): their kernel id, their CPU time then.
        self.inside: dict[int, tuple[int, float]] = {}
        self.since = None
        self.said = (self.limit, 0)
        self.free_before = True  # the lock was free in the last window
        self.idle = 0  # windows in a row with no request

    # --- in the worker ---------------------------------------------------

    def started(self) -> None:
        """The worker's first request (the watchdog's new_worker): its
        gate's pipe, uWSGI's stop pipe found, the first window begun."""
        if self.pid == os.getpid():
            return
        with self.lock:  # its first requests come on several threads at once
            if self.pid == os.getpid():
                return
            self.reset()
            self.stop_fd = stop_pipe(self.known)
            if self.stop_fd is None:
                log(f"worker pid {os.getpid()} runs all its {self.threads} threads (ADAPTIVE_THREADS): "
                    "uWSGI's stop pipe, which would wake a parked thread at a reload, is not the one new "
                    "pipe here")
                self.limit = self.threads
            else:
                self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                self.since = time.monotonic()
                self.meter = CpuMeter(self.quota)
            self.pid = os.getpid()

    def enter(self, waited: float, limit: float, expected) -> float | None:
        """A request this worker took, having waited `waited` seconds for
        one: it runs once it has a place in the limit. Over it (the worker
        has just started, or the limit was lowered while its threads held
        requests), it waits for a place, in arrival order, as long as its
        answer could still start within `limit` (REQUEST_TIMEOUT), taking
        `expected()` seconds (what this worker's answers of its kind take:
        request/deadline.py).
        Returns the seconds it waited here, or None if no place freed in
        time. A gate that is off (started() found no stop pipe, or the gate
        failed) lets every request in at once."""
        self.started()
        ident = threading.get_ident()
        with self.room:
            began = time.monotonic()
            # Through a stop too, each in its turn: let in at once, they would
            # all run past their deadline together (and the stop's budget).
            while len(self.inside) >= self.limit and self.since is not None:
                left = limit - waited - (time.monotonic() - began) - expected()
                if left <= 0:
                    return None
                self.waiting += 1
                try:
                    self.room.wait(min(left, WINDOW))  # the estimate may change meanwhile
                finally:
                    self.waiting -= 1
            self.inside[ident] = (threading.get_native_id(), time.thread_time())
            here = time.monotonic() - began
        self.waits += waited + here
        self.arrived += 1
        return here

    def pause(self, seconds: float) -> None:
        """The watchdog's wait for its next tick, probing the lock meanwhile
        (a worker whose gate is off, started(), just waits)."""
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
                self.set_limit(min(START, self.threads), unpark=self.threads)
            self.say()
            return None
        waited = self.waits / self.arrived if self.arrived else 0.0
        cpu, cpu_wait = self.meter.read()
        # CPU a request: the process's, over the requests it had in the
        # window (those still in it have taken at least their share).
        computes = cpu / (self.ended + len(inside)) >= COMPUTES
        taken = self.taken / self.probes if self.probes else 0.0
        full = len(inside) >= self.limit
        held_long = full and sum(thread_cpu(tid) - then >= LONG for tid, then in inside) >= self.limit
        decision = Decision(taken, cpu_wait / cpu if cpu > 0 else 0.0, waited, full, self.limit, self.threads,
                            held_long, self.free_before, computes)
        self.free_before = taken <= FREE_MOST
        self.since, self.waits, self.arrived, self.probes, self.taken, self.ended = now, 0.0, 0, 0, 0, 0
        self.set_limit(decision.limit)
        return decision

    def set_limit(self, limit: int, unpark: int = 0) -> None:
        """The new limit: the requests waiting for a place told, and as many
        parked threads woken as it lets in, or `unpark` (under the lock, so
        that a thread about to park sees it first)."""
        with self.room:
            self.limit = limit
            self.room.notify_all()
            self.unpark(max(unpark, limit - (self.threads - self.parked)))
        self.say()

    def say(self) -> None:
        """gate-PID: "limit parked", when either changed since last said."""
        state = (self.limit, self.parked)
        if self.generation is None or state == self.said:
            return
        self.said = state
        path = self.generation.gate(self.pid)
        new = path.with_name(f"{path.name}.new")
        try:
            new.write_text(f"{state[0]} {state[1]}\n")
            new.replace(path)
        except OSError:
            pass  # what is said of the gate is not worth a request

    def unpark(self, count: int) -> None:
        count = min(count, self.parked)
        if count > 0 and self.wake_w is not None:
            try:
                os.write(self.wake_w, b"w" * count)
            except OSError:
                pass

    def stop(self) -> None:
        """The worker stops taking requests: every parked thread goes back
        to uWSGI, which ends it once the requests it took have run."""
        self.stopping = True
        self.unpark(self.threads)

    def after_request(self) -> None:
        """uWSGI's after-request hook, in the thread that served: its place
        freed for a request waiting for one; past the limit, it parks until
        the limit is raised or the worker stops."""
        with self.room:
            if self.inside.pop(threading.get_ident(), None) is not None:
                self.ended += 1
                self.room.notify()
            if self.threads - self.parked <= self.limit or self.stopping or self.wake_r is None \
                    or self.pid != os.getpid():
                return
            self.parked += 1
        try:
            self.wait()
        finally:
            with self.lock:
                self.parked -= 1

    def wait(self) -> None:
        poller = select.poll()
        poller.register(self.stop_fd, 0)  # its hang-up only: uWSGI closed the write end
        poller.register(self.wake_r, select.POLLIN)
        while not self.stopping:
            for fd, _ in poller.poll():
                if fd == self.stop_fd:
                    self.stop()
                    return
                try:
                    os.read(self.wake_r, 1)
                    return
                except BlockingIOError:
                    pass  # another parked thread took the byte


def gated(settings) -> bool:
    """Whether the gate runs, from the record (typed): sync workers of more
    than one thread, ADAPTIVE_THREADS on, and not STICKY_CLIENTS, whose
    processes each have a socket of their own: a request left waiting could
    not go to another process, so every thread takes one."""
    return (settings["WORKER_CLASS"] == SYNC and settings["ADAPTIVE_THREADS"]
            and int(settings["UWSGI_THREADS"]) > 1 and not settings["STICKY_CLIENTS"])


def for_worker(threads: int, processes: int, generation: Generation) -> Admission:
    """The gate, made where the app was loaded: the pipes open now are not uWSGI's stop pipe."""
    host = Host()
    return Admission(threads, frozenset(open_pipes().values()), host.cpu_quota(), generation)
