"""How much CPU this process used between two readings, and how long its
threads waited for a CPU meanwhile: ADAPTIVE_THREADS' view of work done
wherever it runs, in Python's lock or outside it (a password hash, a
compression, an image), and of CPUs it cannot have (admission.py). Beside
it, what the gate reads of one thread: the CPU it ran (ran, thread_cpu),
whether it is ready to run (runnable), and how long it waited to take
Python's lock back (lock_wait).

The kernel keeps both for each thread (/proc/self/task/TID/schedstat: the
time it ran, and the time it was ready to run but waited for a CPU, its
run delay), so a neighbour's load shows as well as the process's own
threads: on 2 CPUs, four threads that each compute wait as long as they
run; with two busy loops beside them, twice as long. Where the container
has a CPU quota, the time its cgroup was throttled (its quota spent) counts
as waiting too: a throttled thread is in no run queue. A kernel without
schedstat (no CONFIG_SCHED_INFO) gives no wait: the gate then judges by
the lock alone, as before."""

from __future__ import annotations

import os
import time

TICK = os.sysconf("SC_CLK_TCK")
# cgroup v2, then v1's cpu controller: (file, the throttled field, its unit in seconds).
THROTTLED = (("/sys/fs/cgroup/cpu.stat", "throttled_usec", 1e-6),
             ("/sys/fs/cgroup/cpu/cpu.stat", "throttled_time", 1e-9))


def throttled_seconds() -> float | None:
    """Seconds the container's cgroup has been throttled (its CPU quota
    spent), or None where no cgroup says so."""
    for path, name, unit in THROTTLED:
        try:
            with open(path) as stat:
                for line in stat:
                    field, _, value = line.partition(" ")
                    if field == name:
                        return int(value) * unit
        except (OSError, ValueError):
            continue
    return None


def schedstats() -> dict[int, tuple[int, int]]:
    """Each of this process's threads: (nanoseconds it ran, nanoseconds it
    waited for a CPU). Empty where the kernel keeps no schedstat."""
    found = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                ran, waited, _ = stat.read().split()
            found[int(tid)] = (int(ran), int(waited))
        except (OSError, ValueError):
            continue  # ended since the listing
    return found


class CpuMeter:
    """Since the last reading: CPU seconds this process used (every thread,
    in the lock or out of it), and seconds its threads waited for a CPU."""

    def __init__(self, quota: float | None):
        self.quota = quota
        self.last = self.sample()

    def sample(self) -> tuple[float, dict[int, tuple[int, int]], float | None]:
        own = os.times()
        return own.user + own.system, schedstats(), throttled_seconds() if self.quota else None

    def read(self) -> tuple[float, float]:
        now = self.sample()
        (cpu, threads, throttled), self.last = self.last, now
        # A thread that began meanwhile waited from nothing; one that ended is gone from both.
        waited = sum(new[1] - threads.get(tid, (0, 0))[1] for tid, new in now[1].items()) / 1e9
        if throttled is not None and now[2] is not None:
            waited += now[2] - throttled  # the cgroup's, as the kernel sums it over its CPUs
        return max(now[0] - cpu, 0.0), max(waited, 0.0)


def thread_cpu(tid: int) -> float:
    """CPU seconds of this process's thread `tid` (its kernel id), 0 if
    gone, in clock ticks (a hundredth of a second)."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def ran(tid: int) -> float:
    """CPU seconds of this process's thread `tid`, to the nanosecond where
    the kernel keeps schedstat (time.thread_time's clock, read from
    another thread), else in clock ticks."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return thread_cpu(tid)


def runnable(tid: int) -> bool:
    """Whether this process's thread `tid` is running or ready to run (the
    kernel's state R), rather than asleep: waiting for I/O, for a timer or
    for Python's lock. A thread that computes shows R even when its CPUs
    are so shared that it runs a few percent of its time."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as stat:
            return stat.read().rpartition(")")[2].split(None, 1)[0] == "R"
    except (OSError, IndexError):
        return False


def others_running() -> int | None:
    """Threads running or ready to run on the machine now, the caller aside
    (/proc/loadavg's fourth field, whose count includes the reader: the
    host's, a neighbour's threads too); None if unread."""
    try:
        with open("/proc/loadavg", "rb") as load:
            return int(load.read().split()[3].partition(b"/")[0]) - 1
    except (OSError, ValueError, IndexError):
        return None


def lock_wait() -> float:
    """Seconds this thread waited to take Python's lock back after letting
    it go for nothing (time.sleep(0)): some microseconds while the process's
    requests wait on I/O, about the switch interval (5 ms) or more while one
    of them computes."""
    begun = time.perf_counter()
    time.sleep(0)
    return time.perf_counter() - begun
