"""ADAPTIVE_THREADS: each sync worker runs only as many requests at once as
keep it busy, out of its UWSGI_THREADS.

Sixteen threads a process suit requests that wait (a query, an API, a slow
client): a waiting thread holds no CPU. Requests that compute take turns at
Python's lock instead, in 5 ms slices, so each waits for all its
neighbours, and the switching costs CPU (docs/BENCHMARKS.md, "Pages that
compute": 4 x 16 had a p99 of 1268 ms and 39.8 ms of CPU a page, 4 x 1 416
ms and 36.6 ms). No fixed count wins both, so each worker measures, over
each window between the watchdog's ticks (half a second by default):

- how often Python's lock was taken: the watchdog's thread, while it waits
  for its tick, lets the lock go and times how long it takes to get it
  back (lock_wait): microseconds while the requests wait on I/O, the switch
  interval (5 ms) or more while one of them computes;
- how busy the CPUs the container may use were, and this process's use of
  its share of them (cpu_meter.CpuMeter), for work done outside the lock (a password
  hash, compression) on CPUs that other processes keep busy too;
- how long the requests that reached the worker had waited for one, and
  whether every thread let in holds a request (streams, long polls).

Mostly taken (or now and then, while the CPUs are saturated) by requests
that each compute for longer than a turn at it (5 ms): more requests at
once only add turns, so the limit is halved (quartered when every probe
found the lock taken). Nearly always free two windows in a row, CPUs not
saturated by this process's share of the work, and requests waited
(QUEUED) or every thread let in is held: the limit is doubled. Between the
two it holds; 16 and 1 are some two seconds apart either way. Every
thread let in held by a request that has computed for half a second
(LONG) doubles it too, and two seconds with no request set it back to
every thread.

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
# Saturated CPUs: this busy (of those the container may use), and this
# process using this much of its share of them.
CPUS_BUSY, OWN_SHARE = 0.90, 0.80
# How often the watchdog's thread probes the lock while it waits for its
# next tick: five probes in a window of half a second, each of which takes
# the lock from a request twice.
PROBE_EVERY = 0.1
# Of a window's probes: this share or more found the lock taken, it is
# contended; this share or less, it is free. Between, the limit holds.
TAKEN_MOST, FREE_MOST = 0.5, 0.1
# Requests that compute this long on average (CPU seconds of their thread:
# CPython's switch interval, a turn at the lock) are lowered for; where the
# CPUs are saturated, with the lock taken in only this share of the probes.
TAKEN_SOME, COMPUTES = 0.2, 0.005
# Seconds the requests that reached the worker waited for one, on average,
# that say more would have run at once had they been let in.
QUEUED = 0.002
# Windows in a row with no request at all (two seconds) that set the limit
# back to every thread: a burst a moment later finds it where the last one
# left it, and a thread does not stay parked (uWSGI counting it in a
# request, its 5xx line unwritten) while nothing comes.
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
    """One window's figures and what they say: lower, raise or hold."""

    def __init__(self, taken: float, cpus_busy: float, own: float, share: float, waited: float, full: bool,
                 limit: int, threads: int, held_long: bool = False, free_before: bool = True,
                 computes: bool = False):
        self.taken, self.cpus_busy, self.own, self.waited = taken, cpus_busy, own, waited
        # The CPUs saturated and this process using its share of them: work
        # done outside the lock (a password hash) the probes do not see.
        cpus = cpus_busy >= CPUS_BUSY and own >= OWN_SHARE * share
        if held_long and limit < threads:
            self.limit = min(threads, limit * 2)
        # Requests that each compute for longer than a turn at the lock (a
        # template, a password hash outside it), the lock mostly taken, or
        # taken now and then on CPUs this process has its share of: more at
        # once only take turns. Shorter ones end within their turn: 5 ms
        # waits at 64 clients take it half the time and need every thread.
        elif computes and (taken >= TAKEN_MOST or (cpus and taken >= TAKEN_SOME)) and limit > 1:
            # Taken in every probe: a quarter, so that 16 become one in a second.
            self.limit = max(1, limit // (4 if taken >= 1.0 else 2))
        # Requests waited, or none could have reached it: every thread let in
        # holds one (a stream, a long poll). The lock free for two windows in
        # a row: a page that lets it go for part of its work may leave it
        # free for the five probes of one; and CPUs left to take.
        elif taken <= FREE_MOST and free_before and not cpus and (waited >= QUEUED or full) \
                and limit < threads:
            self.limit = min(threads, limit * 2)
        else:
            self.limit = limit


class Admission:
    """The gate of one worker's threads (made once, where the app is
    loaded; each worker starts its own at its first request, started())."""

    def __init__(self, threads: int, known: frozenset[str], quota: float | None, share: float,
                 generation: Generation | None = None):
        self.threads = threads
        # Where each worker's limit and parked threads are said (gate-PID),
        # for an operator and for metrics.py, which counts a parked thread
        # (uWSGI still calls it in a request) as idle.
        self.generation = generation
        self.quota = quota
        # The CPU a process gets when every process computes: the CPUs
        # (the quota, rounded up) shared out among the processes, at most one.
        self.share = share
        # The pipes open when the app was loaded: uWSGI's stop pipe is one
        # a worker makes after them (core/uwsgi.c, uwsgi_ignition).
        self.known = known
        self.lock = threading.Lock()
        self.pid = 0
        self.reset()

    def reset(self) -> None:
        self.limit = self.threads
        self.parked = 0
        self.stopping = False
        self.wake_r = self.wake_w = self.stop_fd = self.meter = None
        self.waits = 0.0
        self.arrived = self.probes = self.taken = self.ended = 0
        self.computed = 0.0  # CPU seconds of the requests that ended in the window
        # The threads in a request now: their kernel id, their CPU time then.
        self.inside: dict[int, tuple[int, float]] = {}
        self.since = None
        self.said = (self.threads, 0)
        self.free_before = True  # the lock was free in the last window
        self.idle = 0  # windows in a row with no request

    # --- in the worker ---------------------------------------------------

    def started(self) -> None:
        """The worker's first request (the watchdog's new_worker): its
        gate's pipe, uWSGI's stop pipe found, the first window begun."""
        if self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.reset()
        self.stop_fd = stop_pipe(self.known)
        if self.stop_fd is None:
            log(f"worker pid {self.pid} runs all its {self.threads} threads (ADAPTIVE_THREADS): uWSGI's stop "
                "pipe, which would wake a parked thread at a reload, is not the one new pipe here")
            return
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.since = time.monotonic()
        self.meter = CpuMeter(self.quota)

    def reached(self, ident: int, waited: float) -> None:
        """A request reached the wrapper on thread `ident`, having waited this long for a worker."""
        self.inside[ident] = (threading.get_native_id(), time.thread_time())
        self.waits += waited
        self.arrived += 1

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
        with no request, and IDLE_WINDOWS of them set the limit back to
        every thread."""
        if self.since is None or now - self.since < WINDOW:
            return None
        inside = list(self.inside.values())
        self.idle = self.idle + 1 if not self.arrived and not inside else 0
        if self.idle:
            self.since, self.probes, self.taken = now, 0, 0
            self.meter.read()
            if self.idle >= IDLE_WINDOWS:
                self.set_limit(self.threads)
            return None
        waited = self.waits / self.arrived if self.arrived else 0.0
        busy, own = self.meter.read()
        taken = self.taken / self.probes if self.probes else 0.0
        admitted = self.threads - self.parked
        full = len(inside) >= admitted
        held_long = full and sum(thread_cpu(tid) - then >= LONG for tid, then in inside) >= admitted
        computes = self.ended and self.computed / self.ended >= COMPUTES
        decision = Decision(taken, busy, own, self.share, waited, full, self.limit, self.threads, held_long,
                            self.free_before, computes)
        self.free_before = taken <= FREE_MOST
        self.since, self.waits, self.arrived, self.probes, self.taken = now, 0.0, 0, 0, 0
        self.computed, self.ended = 0.0, 0
        self.set_limit(decision.limit)
        return decision

    def set_limit(self, limit: int) -> None:
        """The new limit, and as many parked threads woken as it lets in
        (under the lock, so that a thread about to park sees it first)."""
        with self.lock:
            self.limit = limit
            self.unpark(limit - (self.threads - self.parked))
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
        to uWSGI, which ends it."""
        self.stopping = True
        self.unpark(self.threads)

    def after_request(self) -> None:
        """uWSGI's after-request hook, in the thread that served: past the
        limit, it parks until the limit is raised or the worker stops."""
        began = self.inside.pop(threading.get_ident(), None)
        if began is not None:
            self.computed += time.thread_time() - began[1]
            self.ended += 1
        if self.threads - self.parked <= self.limit or self.stopping or self.wake_r is None \
                or self.pid != os.getpid():
            return
        with self.lock:
            if self.threads - self.parked <= self.limit:
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
    share = min(1.0, host.cpus() / processes)
    return Admission(threads, frozenset(open_pipes().values()), host.cpu_quota(), share, generation)
