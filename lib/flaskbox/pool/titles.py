"""The titles ps shows for the pool's processes ("flaskbox uWSGI worker 3"),
which the arbiter also goes by (a dead master's workers, stop.py).

uWSGI runs as a module of python3 (pyuwsgi: the Dockerfile says why), so
the titles it writes go to a copy of its command line that the kernel
never shows. These go to the one it shows.

Titles       the master's, a worker's, with app.ini's procname options
write        a title over this process's command line
"""

from __future__ import annotations

import ctypes

# /proc/self/stat's arg_start and arg_end (proc(5), fields 48 and 49),
# counted after the command name's ")": field 3 is the first there.
ARG_START, ARG_END = 48 - 3, 49 - 3


class Titles:
    """What uWSGI would call its processes under app.ini's auto-procname
    and procname-prefix(-spaced)."""

    def __init__(self, option) -> None:
        self.on = option("auto-procname", "false").strip().lower() in ("true", "1", "yes", "on", "")
        spaced = option("procname-prefix-spaced", "")
        self.prefix = f"{spaced} " if spaced else option("procname-prefix", "")

    def master(self) -> None:
        if self.on:
            write(f"{self.prefix}uWSGI master")

    def worker(self, number: int = 0) -> None:
        """A new worker's title: at once (its number is not known yet when
        the fork's hooks run), then with its number."""
        if self.on:
            write(f"{self.prefix}uWSGI worker {number}" if number else f"{self.prefix}uWSGI worker")


def write(title: str) -> None:
    """`title` over this process's command line, the rest of it zeroed:
    what /proc/PID/cmdline, and so ps, show from now on. Longer titles are
    cut to the line's length (a pool's command line is some 130 bytes).
    Nothing is written where /proc does not say where the line is (qemu's
    user emulation, which runs the arm64 tests, has no such fields), nor
    when the memory there is not what the kernel shows."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    if len(fields) <= ARG_END:
        return
    start, end = int(fields[ARG_START]), int(fields[ARG_END])
    size = end - start
    if not start or size < 2:
        return
    with open("/proc/self/cmdline", "rb") as shown:
        if ctypes.string_at(start, size) != shown.read()[:size].ljust(size, b"\0"):
            return
    # The last byte stays NUL: the kernel shows no further (past it would
    # be the environment).
    ctypes.memmove(start, title.encode()[:size - 1].ljust(size, b"\0"), size)
