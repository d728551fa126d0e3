"""A worker's ADAPTIVE_THREADS gate in process, for test_admission.py and
test_gate_rest.py: its stop pipe a C pipe, as uWSGI makes it, and the
watchdog's windows as its ticks find them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time

from flaskbox.layout import Generation
from flaskbox.request import admission, stop_pipe
from flaskbox.request.admission import Admission


def c_pipe() -> tuple[int, int]:
    """A pipe as uWSGI makes it, with C's pipe(): no O_CLOEXEC."""
    fds = (ctypes.c_int * 2)()
    assert ctypes.CDLL(None, use_errno=True).pipe(fds) == 0
    return fds[0], fds[1]


@contextlib.contextmanager
def started_gate(folder, threads: int = 4, cpus: int = 0):
    """A started gate of `threads` threads whose gate-PID is in `folder`,
    and its stop pipe's write end."""
    known = frozenset(stop_pipe.open_pipes().values())
    r, w = c_pipe()
    gate = Admission(threads, known, None, Generation(folder), cpus)
    gate.started()
    assert gate.stop_fd == r and (folder / f"gate-{os.getpid()}").read_text() == "1 0\n"  # said at once
    try:
        yield gate, w
    finally:
        gate.stop()  # what a test left parked goes before its pipes close
        until(lambda: gate.parked == 0, "the parked threads gone")
        for fd in (r, gate.wake_r, gate.wake_w):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.close(w)


def finish_requests(gate: Admission, count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=gate.after_request, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def until(predicate, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not {what} within {within} s"
        time.sleep(0.01)


def idle_windows(gate: Admission, count: int) -> None:
    """`count` windows with no request, as the watchdog's ticks find them."""
    for _ in range(count):
        gate.since -= admission.WINDOW
        gate.tick(time.monotonic())
