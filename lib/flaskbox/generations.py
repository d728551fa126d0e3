"""What lib/supervise.sh asks of a generation of the uWSGI pool that a
reload retires: how much it still holds, namely the requests in its listen
queue and the connections its workers hold (an offloaded file download
included, which uWSGI's graceful stop would cut: its offload thread dies
with the worker), and waiting until that is nothing or the grace is over.

`python3 -m flaskbox generation-idle DIR SECONDS` exits 0 once the
generation in DIR holds nothing, GRACE_OVER (3) if it still does after
SECONDS: any other exit (a crash, a kill) says nothing of its requests."""

from __future__ import annotations

import sys
import time

from . import uwsgi_stats
from .layout import Generation
from .unix_sockets import connected_inodes, held_inodes

POLL_EVERY = 0.2
GRACE_OVER = 3


def in_flight(generation: Generation) -> int:
    """Requests the generation still holds: queued or being answered."""
    stats = uwsgi_stats.read(generation.stats_socket)
    if stats is None:
        return 0  # its master is gone: nothing left to wait for
    queued = uwsgi_stats.queued(stats)
    connections = connected_inodes(generation.dir)
    held: set[str] = set()
    for worker in stats.get("workers", []):
        if worker.get("pid"):
            held |= held_inodes(worker["pid"])
    return queued + len(connections & held)


def wait_idle(generation: Generation, seconds: float) -> int:
    """0 when it holds nothing (at once, or within `seconds`), else what it
    still holds."""
    deadline = time.monotonic() + seconds
    while True:
        left = in_flight(generation)
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_EVERY)


def main(directory: str, seconds: str) -> None:
    left = wait_idle(Generation(directory), float(seconds))
    if left:
        print(left)
    sys.exit(GRACE_OVER if left else 0)
