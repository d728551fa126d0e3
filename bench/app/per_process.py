"""What the large apps' shapes (issue 79; bench --apps) share: CPU times
calibrated against this host, and a set-up made once in each process.

keystone_like.py and ckan_like.py do the work of two large apps' pages,
deterministic and with no network; app.py routes to them. Their CPU times
are calibrated against this host's CPU, as tests/test_overload_goodput.py's
app calibrates its login, so that a faster or slower host runs the same
shape: bench/apps.py measures the counts once a run and gives every
contender the same ones (BENCH_TOKEN_ROUNDS, ...); without them, each
process measures its own at import. BENCH_SETUP_SCALE scales the
per-process set-ups (bench --apps --smoke makes them short)."""

from __future__ import annotations

import os
import threading
import time

SETUP_SCALE = float(os.environ.get("BENCH_SETUP_SCALE", "1"))


def calibrated(work, probe: int, seconds: float, name: str) -> int:
    """How many units of `work(units)` take `seconds` of this host's CPU:
    BENCH_<name> if given (the run's, the same for every contender), else
    `probe` units timed once (the thread's own CPU, so that a busy host
    does not shrink it), the count scaled from them."""
    given = os.environ.get(f"BENCH_{name}")
    if given:
        return int(given)
    began = time.thread_time()
    work(probe)
    return max(1, int(probe * seconds / max(time.thread_time() - began, 1e-6)))


class PerProcess:
    """A set-up made once in each process, on its first use, as large apps
    make theirs on their first request. A fork copies the memo, so it is
    kept with the pid that made it; a lock makes the other threads of a new
    process wait for the one building it. `seconds` is the CPU its process
    spent building it."""

    def __init__(self, build):
        self.build, self.lock, self.pid, self.value, self.seconds = build, threading.Lock(), None, None, 0.0

    def get(self):
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    began = time.thread_time()
                    self.value = self.build()
                    self.seconds, self.pid = time.thread_time() - began, os.getpid()
        return self.value

    def stamp(self) -> str:
        """The X-Setup header: this process and its set-up's CPU seconds."""
        return f"{os.getpid()} {self.seconds:.3f}"
