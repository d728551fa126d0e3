"""Guards of a uWSGI worker pool, beyond what uWSGI 2.0 does itself.

Watchdog   REQUEST_TIMEOUT per request for threaded sync workers, whose
           harakiri timer is per process.
LoopWatch  WORKER_CLASS=gevent: a process whose event loop is blocked for
           longer than REQUEST_TIMEOUT (a handler that never yields: CPU
           work, a blocking call gevent cannot patch) serves none of its
           other requests, so it is killed and replaced, as harakiri would.
SpawnGuard In the master: a pool whose workers die before they ever accept
           a request stops uWSGI, and so the container.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def log(message: str) -> None:
    print(f"flaskbox: {message}", file=sys.stderr, flush=True)


class Watchdog:
    """REQUEST_TIMEOUT per request for threaded workers: a request running
    past it takes its worker down (as harakiri would), which frees the stuck
    thread and answers its client with a 5xx; the worker's other requests
    are cut too, so the log says how many."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.running: dict[int, tuple[float, str]] = {}
        self.pid = None
        self.lock = threading.Lock()

    def begin(self, environ) -> None:
        if self.pid != os.getpid():
            # The first request in a new worker (a fork of the master).
            with self.lock:
                if self.pid != os.getpid():
                    self.pid = os.getpid()
                    self.running.clear()
                    threading.Thread(target=self._watch, name="flaskbox-watchdog", daemon=True).start()
        what = f"{environ.get('REQUEST_METHOD')} {environ.get('REQUEST_URI')}"
        self.running[threading.get_ident()] = (time.monotonic(), what)

    def end(self) -> None:
        self.running.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            for started, what in list(self.running.values()):
                if now - started > self.timeout:
                    others = len(self.running) - 1
                    log(f"{what} ran past REQUEST_TIMEOUT ({self.timeout:g} s): killing worker pid "
                        f"{os.getpid()} ({others} other request(s) in it are cut)")
                    os.kill(os.getpid(), signal.SIGKILL)


class LoopWatch:
    """A greenlet notes the time every second; a real OS thread (gevent's
    own threads are greenlets too, and would be blocked with the loop)
    checks that it keeps doing so."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.pid = None
        self.beat = time.monotonic()

    def start_once(self) -> None:
        if self.pid == os.getpid():
            return
        import gevent
        from gevent import monkey
        self.pid = os.getpid()
        self.beat = time.monotonic()
        gevent.spawn(self._beat)
        monkey.get_original("_thread", "start_new_thread")(self._watch, ())

    def _beat(self) -> None:
        import gevent
        while True:
            self.beat = time.monotonic()
            gevent.sleep(1)

    def _watch(self) -> None:
        from gevent import monkey
        sleep = monkey.get_original("time", "sleep")
        while True:
            sleep(1)
            blocked = time.monotonic() - self.beat
            if blocked > self.timeout + 1:
                log(f"gevent's loop in worker pid {os.getpid()} has been blocked for {blocked:.0f} s, past "
                    f"REQUEST_TIMEOUT ({self.timeout:g} s): a handler that never yields (CPU work, or a "
                    "blocking call gevent cannot patch); killing the worker, and with it its requests")
                os.kill(os.getpid(), signal.SIGKILL)


class SpawnGuard:
    """Runs in the uWSGI master after every fork of a worker (an
    os.register_at_fork hook, which py-call-uwsgi-fork-hooks calls). Each
    worker that reaches its accept loop touches `marker` (app.ini's
    hook-accepting). If the master forks more than `limit` workers in a row
    while none of them gets there (a crash at fork, an os.abort() in an
    at-fork hook, an extension that segfaults in a new process), the pool
    cannot stay up: uWSGI would respawn them forever, sleeping 2 s per round,
    and the container would look alive. Exit instead, so that a restart
    policy or an orchestrator sees it. Workers that die after accepting
    (recycling, harakiri, a crash now and then) reset the count."""

    def __init__(self, marker: str, limit: int):
        self.marker = marker
        self.limit = limit
        self.forks = 0
        self.seen: int | None = None

    def stamp(self) -> int | None:
        try:
            return os.stat(self.marker).st_mtime_ns
        except FileNotFoundError:
            return None

    def after_fork(self) -> None:
        stamp = self.stamp()
        if stamp != self.seen:
            self.seen, self.forks = stamp, 0
        self.forks += 1
        if self.forks > self.limit:
            log(f"uWSGI forked {self.forks} workers in a row and none of them started (the reason is "
                "in the log above: a crash at fork, an at-fork hook, an extension module); giving up, "
                "so that a restart policy or orchestrator replaces this container")
            os._exit(3)
