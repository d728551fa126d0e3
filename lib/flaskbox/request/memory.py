"""WORKER_MAX_MEMORY for one worker (guards.Watchdog with sync workers,
guards.LoopWatch with gevent): when its resident memory has grown past the
cap, the worker is replaced gracefully."""

from __future__ import annotations

import os

from ..log import log

# How often a worker looks at its resident memory.
MEMORY_EVERY = 1.0


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryCap:
    """WORKER_MAX_MEMORY for one worker, made when the worker takes its
    first request: over() says when its resident memory has grown past the
    cap. A cap below what the worker held then (a large app, a small share of
    the memory limit) would replace every worker at once, forever: that cap
    is named once in the log and left unapplied."""

    def __init__(self, cap: int):
        self.cap = cap
        self.checked = 0.0
        if cap:
            fresh = resident_bytes()
            if fresh * 5 // 4 >= cap:
                log(f"WORKER_MAX_MEMORY ({cap >> 20} MB) is not above what a fresh worker holds "
                    f"({fresh >> 20} MB): not applied; raise it (or the container's memory limit)")
                self.cap = 0

    def over(self, now: float) -> int | None:
        """The resident size when past the cap (checked every MEMORY_EVERY s)."""
        if not self.cap or now - self.checked < MEMORY_EVERY:
            return None
        self.checked = now
        size = resident_bytes()
        return size if size > self.cap else None
