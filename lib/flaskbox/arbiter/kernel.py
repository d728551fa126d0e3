"""What the kernel's tables say of the processes the arbiter watches, read
in one place: whether a process still runs, its children and command line,
and how much a uWSGI pool still holds: the requests in its listen queue
and the connections its workers hold (an offloaded file download included,
which uWSGI's graceful stop would cut: its offload thread dies with the
worker). From the kernel alone: a master that is stopped, or too busy to
answer on its stats socket, must not read as idle."""

from __future__ import annotations

import os
from pathlib import Path

from ..layout import Generation
from ..sidecars import uwsgi_stats
from ..sidecars.unix_sockets import backlog, connected_inodes, held_inodes

# /proc/PID/stat's flags: set as the process begins to exit, before it
# closes its files and hands its children to PID 1, and so before it is a
# zombie: a pool read meanwhile looks empty, though its requests are being
# cut.
PF_EXITING = 0x4


def running(pid: int) -> bool:
    """Running: neither a zombie nor on its way out (PF_EXITING)."""
    try:
        return stat_running(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return False


def stat_running(stat: str) -> bool:
    """What /proc/PID/stat says: its state (the field after the command
    name, which may hold spaces and parentheses), then its flags, 6 later."""
    fields = stat.rpartition(") ")[2].split()
    return fields[0] not in ("Z", "X") and not int(fields[6]) & PF_EXITING


def children(pid: int) -> list[int]:
    """The processes `pid` forked (a uWSGI master's: its workers)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tasks(pids: list[int]) -> int:
    """The processes and threads of `pids`: what the pids limit counts."""
    count = 0
    for pid in pids:
        try:
            count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass  # gone meanwhile
    return count


def command(pid: int) -> str:
    """Its command line, as ps shows it ("" once it has gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


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
    stats = uwsgi_stats.read(generation.stats_socket, timeout=0.2)
    return uwsgi_stats.queued(stats) if stats is not None else 0


def holds(generation: Generation, master: int) -> int | None:
    """Requests the generation still holds (queued or being answered); None
    unless its master ran throughout the reads. A master that began to exit
    during them had already closed its sockets and handed its workers on:
    what they showed is no measure of its pool."""
    if not running(master):
        return None
    held = queued(generation, master) + len(busy(generation.dir, children(master)))
    return held if running(master) else None
