"""How busy the CPUs a container may use were, and how much of them this
process used, between two readings: ADAPTIVE_THREADS' view of CPU work
done outside Python's lock (admission.py)."""

from __future__ import annotations

import os
import time


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
