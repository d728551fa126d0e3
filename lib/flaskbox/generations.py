"""What lib/supervise.sh asks of the uWSGI pools it runs, from the kernel's
tables alone (a master that is stopped, or too busy to answer on its stats
socket, must not read as idle): how much a pool still holds, namely the
requests in its listen queue and the connections its workers hold (an
offloaded file download included, which uWSGI's graceful stop would cut:
its offload thread dies with the worker); and which workers are in a
request when a budget runs out, so that the log says a request was cut
only when one was.

    python3 -m flaskbox generation-idle DIR MASTER SECONDS
        exit 0 once the pool of MASTER in DIR holds nothing; GRACE_OVER (3)
        if it still does after SECONDS (how much, printed); MASTER_GONE (4)
        if its master ended first (what it held when last seen, printed).
        Any other exit (a crash, a kill) says nothing of its requests.
    python3 -m flaskbox busy-workers FOLDER PID...
        the PIDs holding a connection made to a socket under FOLDER.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from . import uwsgi_stats
from .layout import Generation
from .unix_sockets import backlog, connected_inodes, held_inodes

POLL_EVERY = 0.2
GRACE_OVER = 3
MASTER_GONE = 4


def children(pid: int) -> list[int]:
    """The processes `pid` forked (a uWSGI master's: its workers)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(") ")[2][:1] != "Z"


def busy(folder: Path, pids: list[int]) -> list[int]:
    """The processes among `pids` that hold a connection made to a socket
    under `folder`: workers in a request (or sending a file)."""
    connections = connected_inodes(folder)
    return [pid for pid in pids if connections & held_inodes(pid)]


def queued(generation: Generation, master: int) -> int:
    """Requests waiting in the generation's listen queues: the kernel's
    count; uWSGI's own (its stats) where the kernel will not say."""
    paths = {str(path) for path in generation.dir.glob("*.sock") if path.name != "stats.sock"}
    waiting = backlog(paths, master)
    if waiting is not None:
        return waiting
    stats = uwsgi_stats.read(generation.stats_socket, timeout=0.5)
    return uwsgi_stats.queued(stats) if stats is not None else 0


def in_flight(generation: Generation, master: int) -> int | None:
    """Requests the generation still holds (queued or being answered), or
    None once its master has ended."""
    if not alive(master):
        return None
    held = queued(generation, master) + len(busy(generation.dir, children(master)))
    # Asked again after the reads: a master that ended during them leaves
    # no children and no queue to read, which would pass for an idle pool
    # (a kill -9 under load, cut requests logged as finished). Alive now
    # means alive throughout: the reads saw its pool.
    return held if alive(master) else None


def wait_idle(generation: Generation, master: int, seconds: float) -> tuple[int, int]:
    """(exit code, count): (0, 0) once it holds nothing, at once or within
    `seconds`; (GRACE_OVER, what it still holds) after them; (MASTER_GONE,
    what it held when last seen) if its master ended first."""
    deadline, last = time.monotonic() + seconds, 0
    while True:
        left = in_flight(generation, master)
        if left is None:
            return MASTER_GONE, last
        if left == 0:
            return 0, 0
        if time.monotonic() >= deadline:
            return GRACE_OVER, left
        last = left
        time.sleep(POLL_EVERY)


def main(directory: str, master: str, seconds: str) -> None:
    code, count = wait_idle(Generation(directory), int(master), float(seconds))
    if code:
        print(count)
    sys.exit(code)


def cmd_busy(folder: str, *pids: str) -> None:
    print(" ".join(str(pid) for pid in busy(Path(folder), [int(pid) for pid in pids])))
