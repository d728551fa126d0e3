"""Debug mode waits for a fix when a hook fails (entry-point.sh, _run_hook):
broken code never stops debug mode, and a migration hook that imports an
app with a syntax error is broken code too. The entry-point takes the
state of the files before it runs a hook (`sources`); when the hook fails
it waits (`await-change`) until that state differs, then runs the hook
again. Comparing with the state before the hook, not after its failure,
keeps a save made while the hook ran.

The state is every file's path, mtime, size, mode and owner under the
folders given (/app, the hook folder) and of the files given
(PRE_START_PATH), checked every POLL_INTERVAL seconds: polling sees a save
through any bind mount (Docker Desktop's included), as DEBUG_RELOADER=poll
does. Folders that hold no code are skipped, and so is what is in the
instance folder, where the data lives; the mode and owner of each folder,
the instance folder's too, count from when the wait begins: `chmod g+w
instance`, the fix a hook that could not write there is told, or `chmod +x`
of a script, is a change; a folder the hook made itself is not.
"""

from __future__ import annotations

import hashlib
import os
import time

# Folders under /app that hold no code of the app (debug.py's reloader skips them too).
SKIPPED_DIRS = {"__pycache__", "node_modules", ".git", ".hg", ".venv", "venv"}
INSTANCE = "/app/instance"
# Seconds between two looks: within the 2 s a developer waits for a reload.
POLL_INTERVAL = 0.5


def _files(path: str):
    """(path, whether it is a folder) of `path` and all below it."""
    if not os.path.isdir(path):
        yield path, False
        return
    for root, dirs, files in os.walk(path):
        yield root, True
        if os.path.join(root, "instance") == INSTANCE and "instance" in dirs:
            yield INSTANCE, True  # its mode and owner, not what it holds
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")
                         and os.path.join(root, d) != INSTANCE)
        for name in sorted(files):
            yield os.path.join(root, name), False


def state(paths: list[str]) -> str:
    """Two digests, "FILES:FOLDERS": of every file's path, mtime, size, mode
    and owner under `paths` (a path that does not exist counts as such),
    and of every folder's path, mode and owner (a folder's mtime moves with
    the data written in it)."""
    files, folders = hashlib.sha256(), hashlib.sha256()
    for top in paths:
        for path, folder in _files(top):
            try:
                info = os.stat(path)
            except OSError:
                files.update(f"{path}\0missing\n".encode())
                continue
            owner = f"{info.st_mode:o}\0{info.st_uid}\0{info.st_gid}"
            if folder:
                folders.update(f"{path}\0{owner}\n".encode())
            else:
                files.update(f"{path}\0{info.st_mtime_ns}\0{info.st_size}\0{owner}\n".encode())
    return f"{files.hexdigest()}:{folders.hexdigest()}"


def await_change(before: str, paths: list[str]) -> None:
    """Returns once a file under `paths` differs from `before` (a save made
    while the hook ran counts), or a folder from when the wait began: a
    folder the failed hook made itself (Flask's create_app makes instance/)
    is no fix."""
    files = before.partition(":")[0]
    folders = state(paths).partition(":")[2]
    while True:
        now_files, _, now_folders = state(paths).partition(":")
        if now_files != files or now_folders != folders:
            return
        time.sleep(POLL_INTERVAL)
