"""forks.hold_the_stop, in process: a worker the master forks is born
holding SIGHUP (uWSGI's graceful stop of one worker), so that a stop sent
before the worker has its handler waits for it instead of meeting uWSGI's
SIG_IGN; the master's own mask is as it was. The container test
(test_stop_anytime.py) stops a pool while a worker is being born."""

from __future__ import annotations

import os
import signal

from flaskbox.pool import forks


def born(hooks: dict, child) -> int:
    """Fork as the uWSGI master does (its at-fork hooks around it), run
    child() in the new process: its exit code."""
    hooks["before"]()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if "after_in_child" in hooks:
                hooks["after_in_child"]()
            code = child()
        finally:
            os._exit(code)
    hooks["after_in_parent"]()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_stop_sent_before_the_workers_handler_reaches_it_once_let_through():
    master_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())

    def worker() -> int:
        # uWSGI's order in a new worker: SIGHUP ignored, the stop comes,
        # then the handler, then (app.ini's hook-accepting) sigrelse.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.kill(os.getpid(), signal.SIGHUP)
        came = []
        signal.signal(signal.SIGHUP, lambda number, frame: came.append(number))
        if came:
            return 3  # not held: it ran before the handler was its
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        return 0 if came == [signal.SIGHUP] else 4

    assert born(forks.hold_the_stop(gevent_mode=False), worker) == 0
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == master_mask
