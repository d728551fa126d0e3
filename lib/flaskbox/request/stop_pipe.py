"""uWSGI's stop pipe in a worker: the pipe whose write end uWSGI closes to
end its threads' waits when it stops the worker (core/uwsgi.c,
gracefully_kill and simple_goodbye_cruel_world; made in uwsgi_ignition).
ADAPTIVE_THREADS' parked threads wait on it too (admission.py)."""

from __future__ import annotations

import os

from ..host import descriptors


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
    return {fd: target for fd, target in descriptors().items() if target.startswith("pipe:")}


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
