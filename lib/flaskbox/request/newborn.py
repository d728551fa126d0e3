"""A new worker's threads, held before their first accept (ADAPTIVE_THREADS).

uWSGI lets one thread of a worker at a time wait for a connection; it
accepts, and the next thread takes the next connection at once, in C. A
burst that met a new worker (the container's start, a reload, a
max-requests recycle) was drained by whichever worker's chain held a CPU,
up to all its free threads, into one line behind a limit of one, before the
first of those requests reached Python (docs/BENCHMARKS.md, "Where a new
container's first burst goes").

uWSGI runs a line of Python in each thread it starts, before the thread
makes its queue and waits for a connection (plugins/python,
uwsgi_python_init_thread: current_thread().name = "uWSGIWorkerNCoreM"). That
assignment is where the gate (parking.py) parks the threads past its limit
and one more, as it parks one after an answer, until a raised limit or
uWSGI's stop wakes it. The worker's main thread (core 0) is named by no one
and never comes here. A Python whose threading module has no such place
holds none, and a hold that fails lets its thread go on to accept.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ..log import log

PREFIX = "uWSGIWorker"


def hold(before_first_accept: Callable[[], None]) -> bool:
    """uWSGI's naming of each thread it starts calls `before_first_accept`
    in that thread. False (and nothing changed) where it cannot."""
    dummy = getattr(threading, "_DummyThread", None)
    named = getattr(threading.Thread, "name", None)
    if dummy is None or not isinstance(named, property) or named.fget is None or named.fset is None:
        return False

    def set_name(thread: threading.Thread, name: str) -> None:
        named.fset(thread, name)
        if isinstance(name, str) and name.startswith(PREFIX):
            try:
                before_first_accept()
            except Exception as exc:  # the thread goes on as it would without the gate: uWSGI's, not ours
                log(f"worker pid {os.getpid()}: a thread not held before its first accept ({exc!r})")

    # Only the threads threading did not start (uWSGI's) are _DummyThread.
    dummy.name = property(named.fget, set_name)
    return True
