"""What an app's import leaves behind in the process that imports it,
counted before and after (pool/preload.py judges it, in uWSGI's master,
before the workers are forked): the kernel's tasks (threads.py says which
of them matter), the sockets (connections.py: which are connections a fork
would share), and how much the memory grew meanwhile (what a worker pays
for a copy of its own).

Where the import started a thread (threading.Thread.start) or connected a
socket (socket.connect, which every pure-Python client calls: redis-py,
PyMySQL, urllib3) is noted as it happens, so that a line can name the
library's line and the app's that led there. The image starts neither
while the app imports, but importing.Deadline's watchdog, which is there
before the census begins."""

from __future__ import annotations

import os
import socket
import sys
import threading

from ..host import descriptors
from ..layout import APP_DIR

# Where a library's path is shortened from (the part a reader knows).
SITE_DIRS = ("/site-packages/", "/dist-packages/")
# Frames no reader looks for, between the caller and the call: the
# standard library's (threading's start, socket's create_connection) and
# the import system's, which run a module ("<frozen importlib._bootstrap>").
STDLIB = os.path.dirname(threading.__file__) + "/"


def machinery(path: str) -> bool:
    return (path == __file__ or path.startswith("<frozen ")
            or (path.startswith(STDLIB) and not any(marker in path for marker in SITE_DIRS)))


def tasks(pid: str = "self") -> set[int]:
    """The kernel's threads (tasks) of this process, Python's and native."""
    try:
        return {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
    except OSError:
        return set()


def resident(pid: str = "self") -> int:
    """This process's resident memory, in bytes (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def sockets() -> dict[int, int]:
    """This process's open sockets: inode -> descriptor."""
    return {int(target[len("socket:["):-1]): fd for fd, target in descriptors().items()
            if target.startswith("socket:[")}


def short(path: str) -> str:
    for marker in SITE_DIRS:
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def place(frame) -> str:
    return f"{short(frame.f_code.co_filename)}, line {frame.f_lineno}, in {frame.f_code.co_name}"


def started_at(frame, app_dir: str = str(APP_DIR)) -> str:
    """Where a call was made: the first frame outside the machinery (a
    library's, often), and the app's own frame that led there, if another.
    The import system's own frames are never named: a compiled module that
    starts a thread as it is imported (python-oracledb's, under Redash, was
    said to start at "<frozen importlib._bootstrap>, line 488") is named by
    the module imported, then the line that imported it."""
    importing = ""
    while frame is not None and machinery(frame.f_code.co_filename):
        spec = frame.f_locals.get("spec") if frame.f_code.co_filename.startswith("<frozen ") else None
        importing = importing or getattr(spec, "name", "")
        frame = frame.f_back
    if frame is None:
        return f"{importing}'s import" if importing else ""
    said = f"{importing}'s import, from {place(frame)}" if importing else place(frame)
    if frame.f_code.co_filename.startswith(app_dir + "/"):
        return said
    outer = frame.f_back
    while outer is not None and not outer.f_code.co_filename.startswith(app_dir + "/"):
        outer = outer.f_back
    return said if outer is None else f"{said}, from {place(outer)}"


class Census:
    """With: the app's import. Then new_tasks() and new_sockets() say what
    it left, where_started and where_connected where it made them, and
    grown how much the process's memory grew meanwhile."""

    def __init__(self):
        self.before: set[int] = set()
        self.sockets: dict[int, int] = {}
        self.started: list[threading.Thread] = []
        self.where_connected: dict[int, str] = {}  # a socket's inode -> where Python connected it
        self.grown = 0
        self._restore: list = []

    def __enter__(self):
        self.before = tasks()
        self.sockets = sockets()
        self.memory = resident()
        self._watch(threading.Thread, "start", self._started)
        # socket.socket is gevent's class once gevent has patched the module:
        # the one the app's clients make.
        for name in ("connect", "connect_ex"):
            self._watch(socket.socket, name, self._connected)
        return self

    def __exit__(self, *exc):
        for cls, name, own in reversed(self._restore):
            if own is None:
                delattr(cls, name)  # inherited (socket.socket's connect is _socket's)
            else:
                setattr(cls, name, own)
        self._restore = []
        self.grown = max(resident() - self.memory, 0)
        return False

    def _watch(self, cls, name: str, after) -> None:
        """cls.name, noted by `after` where the import calls it (an app's
        subclass with __slots__ just goes unnamed)."""
        own = cls.__dict__.get(name)
        original = getattr(cls, name)

        def watched(obj, *args, **kwargs):
            if after is self._started:
                after(obj, sys._getframe(1))
                return original(obj, *args, **kwargs)
            result = original(obj, *args, **kwargs)
            after(obj, sys._getframe(1))
            return result

        self._restore.append((cls, name, own))
        setattr(cls, name, watched)

    def _started(self, thread, frame) -> None:
        try:
            thread._flaskbox_started_at = started_at(frame)
        except (AttributeError, TypeError):
            pass
        self.started.append(thread)

    def _connected(self, sock, frame) -> None:
        try:
            self.where_connected[os.fstat(sock.fileno()).st_ino] = started_at(frame)
        except (OSError, ValueError, AttributeError):
            pass  # closed meanwhile, or a socket of an app's own kind

    def new_tasks(self) -> set[int]:
        return tasks() - self.before

    def new_sockets(self) -> dict[int, int]:
        """The sockets opened since the import began and still open: inode -> descriptor."""
        return {inode: fd for inode, fd in sockets().items() if inode not in self.sockets}
