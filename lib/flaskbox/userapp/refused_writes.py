"""Writes next to the app's code that the file system refuses, named where
they happen: an audit hook (PEP 578) watches the app's import (its
refusals said together at its end), then every request (each new refused
path said once in each process, up to 32, when it first happens), a hook's
or a one-off command's Python too (said after its traceback, which ends
it). Each says what to do, for the way /app is there: an image's
read-only code (WRITABLE_PATHS and its link), a checkout mounted
read-only, or one this uid may not write."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from ..layout import APP_DIR
from .writable import INSTANCE, _how_to_write, _nearest_existing, _read_only, instance_unwritable

# os.open flags that write.
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


# Paths said in one process: a route writing a client's file name next to
# the code must not grow the log, or the memory, with every request.
MOST = 32


class Watch:
    """An audit hook (PEP 578) that notes writes under /app, outside the
    instance folder, that the file system will refuse, while `active`: the
    app's import, whose refusals are said together at its end; then, in
    `live` mode, the requests, each refused path said once in each process
    when it first happens (sqlite3.connect('test.db') in a route failed with
    only "unable to open database file"). Python cannot remove an audit hook: inactive,
    it returns at once."""

    installed: Watch | None = None
    EVENTS = ("open", "os.mkdir", "sqlite3.connect")

    def __init__(self):
        self.active = self.live = False
        self.refused: dict[str, bool] = {}  # path -> whether a folder
        self.checking = threading.local()  # what a check opens is not checked again

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or event not in self.EVENTS or getattr(self.checking, "now", False):
            return
        if event == "open":
            path, mode, flags = args
            if path is None or (mode and not any(c in mode for c in "wax+")) \
                    or (not mode and not flags & WRITE_FLAGS):
                return
        else:
            path = args[0]
            if event == "sqlite3.connect" and (not isinstance(path, (str, bytes, os.PathLike))
                                               or os.fsdecode(path) in ("", ":memory:")
                                               or os.fsdecode(path).startswith("file:")):
                return
        self.checking.now = True
        try:
            new = self._check(path, folder=event == "os.mkdir")
            if new and self.live and len(self.refused) <= MOST:
                _stderr(warning({new: event == "os.mkdir"}))
            elif new and self.live and len(self.refused) == MOST + 1:
                _stderr(f"flaskbox: warning: more writes next to the code refused in process {os.getpid()} "
                        f"than the {MOST} said above: no more are said")
        finally:
            self.checking.now = False

    def _check(self, path, folder: bool) -> str | None:
        """The path, when it is newly found refused."""
        if isinstance(path, int):
            return None
        try:
            path = Path(os.path.abspath(os.fsdecode(path)))
        except (TypeError, ValueError):
            return None
        # Python's own bytecode cache: its failure to write is silent and harmless.
        if APP_DIR not in path.parents or "__pycache__" in path.parts:
            return None
        real = Path(os.path.realpath(path))
        # The instance folder is the data's volume, writable, except in a
        # checkout mounted without one (Flask-SQLAlchemy then fails to make it).
        in_instance = real == INSTANCE or INSTANCE in real.parents
        if (in_instance and os.access(INSTANCE, os.W_OK)) or str(path) in self.refused:
            return None
        existing = _nearest_existing(real)
        if os.access(existing, os.W_OK) or len(self.refused) > MOST:
            return None
        self.refused[str(path)] = folder
        return str(path)


@contextlib.contextmanager
def watch(log=None):
    """Around the app's import: afterwards (also when the import failed) one
    warning naming every write next to the code that was refused; then the
    watch goes on for the requests, saying each new one as it happens."""
    if Watch.installed is None:
        Watch.installed = Watch()
        sys.addaudithook(Watch.installed)
    hook = Watch.installed
    hook.refused, hook.active, hook.live = {}, True, False
    try:
        yield
    finally:
        if hook.refused:
            message = warning(hook.refused)
            (log or _stderr)(message)
        hook.live = True


def watch_process() -> None:
    """In a hook's Python (a migration hook imports the app too): the watch
    for the process's whole life, its warning after the traceback of an
    uncaught exception, since that stops the start. Run from flaskbox.pth
    when the entry-point sets FLASKBOX_HOOK_WRITES=1 for a hook."""
    if Watch.installed is None:
        Watch.installed = Watch()
        sys.addaudithook(Watch.installed)
    hook = Watch.installed
    hook.refused, hook.active = {}, True
    previous = sys.excepthook

    def excepthook(kind, value, traceback):
        previous(kind, value, traceback)
        if hook.refused:
            _stderr(warning(hook.refused))

    sys.excepthook = excepthook


def warning(refused: dict[str, bool]) -> str:
    """The paths as WRITABLE_PATHS would list them: a folder with its /. In
    a checkout mounted on /app (debug mode, mostly) the fix is the uid's
    right to write it, not the image's links; in the instance folder (or
    through a link into it), the uid's right to write that."""
    inside = {path: folder for path, folder in refused.items() if _in_instance(path)}
    if inside:
        said = (f"flaskbox: warning: your app writes in {INSTANCE}, and {instance_unwritable()}. These were "
                f"refused: {_listed(inside)}")
        rest = {path: folder for path, folder in refused.items() if path not in inside}
        return f"{said}\n{warning(rest)}" if rest else said
    listed = _listed(refused)
    if os.path.ismount(APP_DIR) and _read_only(APP_DIR):
        return (f"flaskbox: warning: your app writes next to its code, and the folder mounted on {APP_DIR} "
                f"is read-only (`:ro`), so these were refused: {listed}. Write under {INSTANCE} instead (a "
                f"volume: -v myapp-data:{INSTANCE}), or mount {APP_DIR} read-write")
    if os.path.ismount(APP_DIR):
        folder = _nearest_existing(Path(next(iter(refused))))
        return (f"flaskbox: warning: your app writes next to its code, in the folder mounted on {APP_DIR}, "
                f"and uid {os.getuid()} may not write there, so these were refused: {listed}. "
                f"{_how_to_write(folder)[0].upper()}{_how_to_write(folder)[1:]}")
    return (f"flaskbox: warning: your app writes next to its code, and /app is read-only, so these were "
            f"refused: {listed}. To keep them on the instance volume, set WRITABLE_PATHS=\"{listed}\" "
            "(a trailing / for a folder; a file the app only writes is listed without) and add "
            "`RUN python3 -m flaskbox writable` to your Dockerfile (docs/your-app.md)")


def _listed(refused: dict[str, bool]) -> str:
    return " ".join(f"{path}/" if folder else path for path, folder in refused.items())


def _in_instance(path: str) -> bool:
    """In an instance folder that is there (a checkout mounted without one:
    the checkout's right to write is the fix)."""
    real = Path(os.path.realpath(path))
    return (real == INSTANCE or INSTANCE in real.parents) and INSTANCE.is_dir()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
