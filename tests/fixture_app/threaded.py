"""The fixture app with what real apps run beside their requests: a thread
started at import (a scheduler, an SDK's background sender) that takes
locks, logs and imports all the time, so that a fork of a worker often
lands while another thread holds one of Python's locks: where uWSGI's
handling of them on Python 3.13 and later aborted workers (uWSGI #2692,
#2710, #2748)."""

import importlib
import logging
import os
import threading
import time

from app import app  # noqa: F401  (the fixture app)

log = logging.getLogger("threaded")
lock = threading.Lock()
TICKS = {"count": 0}


def busy() -> None:
    while True:
        with lock:
            TICKS["count"] += 1
        log.debug("tick %d", TICKS["count"])
        importlib.import_module("json")
        time.sleep(0.001)


def start() -> None:
    threading.Thread(target=busy, name="background", daemon=True).start()


def start_in_child() -> None:
    # The parent's thread may have held the lock at the fork: a fresh one,
    # as a well-written library resets its own.
    global lock
    lock = threading.Lock()
    start()


# In the master, where uWSGI forks every worker from, and in each worker,
# which a recycle or a stop then ends with the thread still running.
start()
os.register_at_fork(after_in_child=start_in_child)


@app.get("/ticks")
def ticks():
    return {"ticks": TICKS["count"], "pid": os.getpid()}
