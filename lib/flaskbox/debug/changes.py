"""Debug mode waits for a fix when a hook fails (entry-point.sh, _run_hook):
broken code never stops debug mode, and a migration hook that imports an
app with a syntax error is broken code too. The entry-point takes the
state of the files before it runs a hook (`sources`); when the hook fails
it waits (`await-change`) until that state differs, then runs the hook
again. Comparing with the state before the hook, not after its failure,
keeps a save made while the hook ran.

The state is every file's path, mtime and size under the folders given
(/app, the hook folder) and of the files given (PRE_START_PATH), checked
every POLL_INTERVAL seconds: polling sees a save through any bind mount
(Docker Desktop's included), as DEBUG_RELOADER=poll does. Folders that hold
no code are skipped, and so is the instance folder, where the data lives.
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
    if not os.path.isdir(path):
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")
                         and os.path.join(root, d) != INSTANCE)
        for name in sorted(files):
            yield os.path.join(root, name)


def state(paths: list[str]) -> str:
    """A digest of every file's path, mtime and size under `paths`; a path
    that does not exist counts as such."""
    digest = hashlib.sha256()
    for top in paths:
        for path in _files(top):
            try:
                info = os.stat(path)
                digest.update(f"{path}\0{info.st_mtime_ns}\0{info.st_size}\n".encode())
            except OSError:
                digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def await_change(before: str, paths: list[str]) -> None:
    """Returns once the state of `paths` differs from `before`."""
    while state(paths) == before:
        time.sleep(POLL_INTERVAL)
