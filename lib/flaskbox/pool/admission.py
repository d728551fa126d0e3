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
  its share of them (CpuMeter), for work done outside the lock (a password
  hash, compression) on CPUs that other processes keep busy too;
- how long the requests that reached the worker had waited for one, and
  whether every thread let in holds a request (streams, long polls).

Mostly taken, or CPUs saturated with this process using its share: more
requests at once only add turns, so the limit is halved. Nearly always
free, CPUs not saturated, and requests waited (QUEUED) or every thread
let in is held: the limit is doubled. Either way 16 and 1 are four windows apart (two seconds), and
between the two lines it holds.

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
from ..log import log

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
# Seconds the requests that reached the worker waited for one, on average,
# that say more would have run at once had they been let in.
QUEUED = 0.002
# The shortest window a decision is made on (the watchdog ticks twice a
# second with the default REQUEST_TIMEOUT).
WINDOW = 0.25


def lock_wait() -> float:
    """Seconds this thread waited to take Python's lock back after letting
    it go for nothing (time.sleep(0)): some microseconds while the process's
    requests wait on I/O, about the switch interval (5 ms) or more while one
    of them computes."""
    begun = time.perf_counter()
    time.sleep(0)
    return time.perf_counter() - begun


def cgroup_cpu_seconds() -> float | None:
    """CPU seconds the container's cgroup has used (v2 or v1), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.stat") as stat:
            for line in stat:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpuacct/cpuacct.usage") as usage:
            return int(usage.read()) / 1e9
    except (OSError, ValueError):
        return None


def cpu_ticks(cpus: set[int]) -> tuple[int, int]:
    """(busy, all) clock ticks of these CPUs. /proc/stat is the host's: a
    container's CPUs are as busy as anyone keeps them."""
    busy = total = 0
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                if not line.startswith("cpu") or line[3] == " ":
                    continue
                name, *fields = line.split()
                if int(name[3:]) in cpus:
                    ticks = [int(field) for field in fields[:8]]
                    total += sum(ticks)
                    busy += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    return busy, total


class CpuMeter:
    """Since the last reading: how busy the CPUs this container may use
    were (the busier of its CPUs, whoever used them, and its quota), and
    how much CPU this process used, in CPUs."""

    def __init__(self, quota: float | None):
        self.quota = quota
        self.cpus = os.sched_getaffinity(0)
        self.last = self.sample()

    def sample(self) -> tuple[float, float | None, tuple[int, int], float]:
        own = os.times()
        return (time.monotonic(), cgroup_cpu_seconds() if self.quota else None, cpu_ticks(self.cpus),
                own.user + own.system)

    def read(self) -> tuple[float, float]:
        now = self.sample()
        (then, used, ticks, own), self.last = self.last, now
        span = max(now[0] - then, 1e-6)
        busy = 0.0
        if now[2][1] > ticks[1]:
            busy = (now[2][0] - ticks[0]) / (now[2][1] - ticks[1])
        if used is not None and now[1] is not None:
            busy = max(busy, (now[1] - used) / span / self.quota)
        return busy, (now[3] - own) / span


def fd_flags(fd: int) -> int | None:
    try:
        with open(f"/proc/self/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def open_pipes() -> dict[int, str]:
    """This process's pipe descriptors and the pipe (its inode) of each."""
    pipes = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return pipes
    for name in names:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            pipes[int(name)] = target
    return pipes


def stop_pipe(known: frozenset[str]) -> int | None:
    """The read end of uWSGI's stop pipe: of the pipes a worker has made
    since the app was loaded (not in `known`), the one both of whose ends
    are here and were made by C's pipe(), without O_CLOEXEC, which every
    pipe Python makes has (PEP 446). None when not exactly one."""
    ends: dict[str, list[int]] = {}
    for fd, pipe in sorted(open_pipes().items()):
        if pipe not in known:
            ends.setdefault(pipe, []).append(fd)
    found = []
    for pair in ends.values():
        flags = [fd_flags(fd) for fd in pair]
        if len(pair) == 2 and None not in flags and not any(flag & os.O_CLOEXEC for flag in flags):
            found += [fd for fd, flag in zip(pair, flags, strict=True) if flag & os.O_ACCMODE == os.O_RDONLY]
    return found[0] if len(found) == 1 else None


class Decision:
    """One window's figures and what they say: lower, raise or hold."""

    def __init__(self, taken: float, cpus_busy: float, own: float, share: float, waited: float, full: bool,
                 limit: int, threads: int):
        self.taken, self.cpus_busy, self.own, self.waited = taken, cpus_busy, own, waited
        # Python's lock mostly taken, or the CPUs, this process using its share of them.
        cpus = cpus_busy >= CPUS_BUSY and own >= OWN_SHARE * share
        if (taken >= TAKEN_MOST or cpus) and limit > 1:
            self.limit = max(1, limit // 2)
        # Requests waited, or none could have reached it: every thread let in
        # holds one (a stream, a long poll).
        elif taken <= FREE_MOST and not cpus and (waited >= QUEUED or full) and limit < threads:
            self.limit = min(threads, limit * 2)
        else:
            self.limit = limit


class Admission:
    """The gate of one worker's threads (made once, where the app is
    loaded; each worker starts its own at its first request, started())."""

    def __init__(self, threads: int, known: frozenset[str], quota: float | None, share: float):
        self.threads = threads
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
        self.arrived = self.probes = self.taken = 0
        self.inside: set[int] = set()  # the threads in a request now
        self.since = None

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
        self.inside.add(ident)
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
        """From the watchdog's thread: a window's decision, once WINDOW has passed."""
        if self.since is None or now - self.since < WINDOW:
            return None
        waited = self.waits / self.arrived if self.arrived else 0.0
        busy, own = self.meter.read()
        taken = self.taken / self.probes if self.probes else 0.0
        full = len(self.inside) >= self.threads - self.parked
        decision = Decision(taken, busy, own, self.share, waited, full, self.limit, self.threads)
        self.since, self.waits, self.arrived, self.probes, self.taken = now, 0.0, 0, 0, 0
        if decision.limit > self.limit:
            self.unpark(decision.limit - self.limit)
        self.limit = decision.limit
        return decision

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
        self.inside.discard(threading.get_ident())
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


def for_worker(threads: int, processes: int) -> Admission:
    """The gate, made where the app was loaded: the pipes open now are not uWSGI's stop pipe."""
    host = Host()
    share = min(1.0, host.cpus() / processes)
    return Admission(threads, frozenset(open_pipes().values()), host.cpu_quota(), share)
