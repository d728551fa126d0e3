"""The files the arbiter waits for, as events its loop's wait wakes on:
inotify(7), through ctypes (the standard library's way to libc), on the
folders where the marks of readiness are written: a worker that accepts
(a generation's `ready`), nginx's pid file, the metrics server's `ready`.
The loop never looks for them at intervals; a mark written between two
turns wakes the next one.

Where the kernel refuses an inotify instance or a watch (its limits,
fs.inotify.max_user_instances and max_user_watches, count per user on the
whole host, containers included), the loop looks at every mark at each
turn, and its wait is then no longer than DEGRADED_WAIT while a mark is
awaited: the one case with a timer, said in the log (system.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

# inotify(7)'s event bits: a file made, written and closed, renamed in,
# or its times changed (`touch` of one that exists).
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
WRITTEN = IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
# struct inotify_event: wd, mask, cookie, len, then len bytes of name.
HEADER = struct.Struct("iIII")
# Seconds of the wait while no inotify instance could be had.
DEGRADED_WAIT = 0.05


class Unwatched(OSError):
    """No inotify instance: the kernel's limit, or a libc without it."""


class Inotify:
    def __init__(self):
        # Imported here, once PID 1's signal handlers are set (system.py):
        # not in the window before them, where a stop would be lost.
        import ctypes

        self._errno = ctypes.get_errno
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, self._add, self._rm = libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
        except (OSError, AttributeError) as exc:
            raise Unwatched(0, f"no inotify in libc ({exc})") from None
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            number = self._errno()
            raise Unwatched(number, os.strerror(number))
        self.fd = fd
        self._folders: dict[int, Path] = {}

    def watch(self, folder: Path) -> None:
        """Files written in folder are read() from now on (again: no-op).
        OSError when the folder cannot be watched."""
        wd = self._add(self.fd, os.fsencode(folder), WRITTEN)
        if wd < 0:
            number = self._errno()
            raise OSError(number, os.strerror(number), str(folder))
        self._folders[wd] = Path(folder)

    def unwatch(self, folder: Path) -> None:
        """Its files no longer read (a folder removed has gone already)."""
        for wd, watched in list(self._folders.items()):
            if watched == Path(folder):
                del self._folders[wd]
                self._rm(self.fd, wd)

    def read(self) -> list[Path] | None:
        """The files written since the last read; None when the kernel's
        queue overflowed and any of them may have been."""
        written: list[Path] | None = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return written
            offset = 0
            while offset < len(data):
                wd, mask, _, length = HEADER.unpack_from(data, offset)
                name = data[offset + HEADER.size:offset + HEADER.size + length].rstrip(b"\0")
                offset += HEADER.size + length
                if mask & IN_Q_OVERFLOW:
                    written = None
                elif mask & IN_IGNORED:
                    self._folders.pop(wd, None)  # its folder was removed: the number is free again
                elif written is not None and name and wd in self._folders:
                    written.append(self._folders[wd] / os.fsdecode(name))
