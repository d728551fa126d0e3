"""WORKER_CLASS=gevent: the app's exit handlers (an SDK's last flush:
Sentry's, OpenTelemetry's) at the end of a worker.

uWSGI 2.0 runs no Python exit handler in a worker of an async loop engine
(plugins/python/python_plugin.c, uwsgi_python_atexit: "managing atexit in
async mode is a real pain...skip it for now"): a gevent worker's exit()
leaves Python's atexit list unrun, however the worker ends. What its gevent
loop does call (plugins/gevent/gevent.c) is the `uwsgi` module's `atexit`:
in the greenlet of the last request to end once the worker takes no new
ones, and in the worker's main greenlet once the loop's control greenlet is
gone, just before exit(), whether a stop, a reload's old code, max-requests
or WORKER_MAX_MEMORY's replacement ended it. This is that function. It runs
the app's exit handlers there, with the loop still running, so that their
senders (greenlets, once gevent has patched threading) can send; once only:
a second call waits for the first's run to end, since the process exits as
soon as the main greenlet's call returns.

Their budget is that of the way the worker ends: a stop's and a reload's
are the arbiter's (arbiter/stop.py, generation.py); max-requests' is uWSGI's
worker-reload-mercy (its time bomb), and WORKER_MAX_MEMORY's the same
number, kept by the LoopWatch (guards.py).
"""

from __future__ import annotations

import atexit
import os


class AtWorkerEnd:
    """uwsgi.atexit for a gevent pool, set in the master before its forks;
    an atexit of the app's own, set on the uwsgi module before, runs first."""

    def __init__(self, uwsgi):
        self.uwsgi = uwsgi
        self.then = getattr(uwsgi, "atexit", None)
        self.pid: int | None = None  # the worker whose run began
        self.done = None  # a gevent Event, set when that run has ended

    def __call__(self) -> None:
        if self.uwsgi.worker_id() == 0:
            # The master: Python's own exit runs its handlers after this.
            return self.app_atexit()
        if self.pid == os.getpid():
            self.done.wait()
            return
        from gevent.event import Event
        self.pid, self.done = os.getpid(), Event()
        try:
            self.app_atexit()
            atexit._run_exitfuncs()  # and empties the list
        finally:
            self.done.set()

    def app_atexit(self) -> None:
        if self.then is not None:
            self.then()


def install(uwsgi) -> None:
    uwsgi.atexit = AtWorkerEnd(uwsgi)
