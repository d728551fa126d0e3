"""What flaskbox reaches for that no release promises (docs/architecture.md,
"What flaskbox relies on that is not public"): each named here, so that an
upgrade that changes one fails this test by its name instead of breaking
a worker without a word. ADAPTIVE_THREADS' gate reaches for none: it runs
in the request's own thread, on the WSGI call alone."""

from __future__ import annotations

import atexit
import sys
import threading


def test_cpython_atexit_run_exitfuncs():
    # guards.Watchdog.leave: a retired worker runs the app's exit handlers
    # (an SDK's last flush) itself, since the stuck thread keeps uWSGI's
    # own exit from ever coming.
    ran = []
    atexit.register(ran.append, "ran")
    try:
        atexit._run_exitfuncs()
    finally:
        atexit.unregister(ran.append)
    assert ran == ["ran"]


def test_cpython_sys_current_frames():
    # request/stacks.py: where a handler past REQUEST_TIMEOUT waits, read
    # from its thread's frame (documented, though named as private).
    frames = sys._current_frames()
    assert sys._getframe() is frames[threading.get_ident()]
