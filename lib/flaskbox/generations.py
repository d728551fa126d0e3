"""What lib/supervise.sh asks of a generation of the uWSGI pool that a
reload retires: how much it still holds, namely the requests in its listen
queue and the connections its workers hold (an offloaded file download
included, which uWSGI's graceful stop would cut: its offload thread dies
with the worker), and waiting until that is nothing or the grace is over.

`python3 -m flaskbox generation-idle DIR SECONDS` exits 0 once the
generation in DIR holds nothing, GRACE_OVER (3) if it still does after
SECONDS: any other exit (a crash, a kill) says nothing of its requests."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import uwsgi_stats
from .layout import Generation

POLL_EVERY = 0.2
GRACE_OVER = 3


def connected_inodes(folder: Path, table: str = "/proc/net/unix") -> set[str]:
    """Inodes of the connections made to a socket in `folder` (a connected
    socket shows its listener's path in the table; state 03)."""
    prefix = f"{folder}/"
    found = set()
    try:
        lines = Path(table).read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[5] == "03" and fields[7].startswith(prefix):
            found.add(fields[6])
    return found


def held_inodes(pid: int) -> set[str]:
    """The socket inodes a process holds open."""
    held = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                held.add(target[8:-1])
    except OSError:
        pass
    return held


def in_flight(generation: Generation) -> int:
    """Requests the generation still holds: queued or being answered."""
    stats = uwsgi_stats.read(generation.stats_socket)
    if stats is None:
        return 0  # its master is gone: nothing left to wait for
    queued = sum(sock.get("queue", 0) for sock in stats.get("sockets", []))
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
