"""The uWSGI master's forks of its workers, watched from the master.

on_the_masters_forks  os.register_at_fork, for those forks only: not for
                      the forks an app makes in a request.
hold_the_stop         a worker is born with its graceful stop (SIGHUP) held
                      until it can act on it.
end_at_an_interrupt   a lazy-apps worker ended while it imports the app ends
                      quietly, as uWSGI ends one later.
SpawnGuard            a pool whose workers die before they ever accept a
                      request stops uWSGI, and so the container, once the
                      workers still up have ended as at a stop; a worker
                      the kernel's OOM killer ended is named as such.

wsgi.py registers both when it prepares the pool; the guards of each
request in a worker are guards.py's.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..host import Host
from ..layout import POOL_FAILED, STOP_TIMEOUT_SECONDS, UWSGI_ENDED, exit_budget
from ..log import log

# How often the master looks whether the workers it stops have ended.
ENDED_EVERY = 0.05


def on_the_masters_forks(**hooks) -> None:
    """os.register_at_fork(**hooks), for the forks of the uWSGI master only:
    the ones that make its workers. A worker inherits the hooks registered in
    the master, and an app that forks in a request (os.fork, or
    multiprocessing's "fork" start method, Python's default before 3.14)
    would run them there: SpawnGuard took each such fork for a worker that
    never started, and after 3 x processes of them ended the worker under
    the request (a 502)."""
    master = os.getpid()

    def for_the_master(when: str, hook):
        # after_in_child runs in the new process, which the master's fork made
        # if the master is its parent.
        whose = os.getppid if when == "after_in_child" else os.getpid

        def run() -> None:
            if whose() == master:
                hook()
        return run

    os.register_at_fork(**{when: for_the_master(when, hook) for when, hook in hooks.items()})


def hold_the_stop(gevent_mode: bool) -> dict:
    """The at-fork hooks (for on_the_masters_forks) that make a new worker
    hold SIGHUP, uWSGI's graceful stop of one worker, from its first
    instruction (the kernel copies the forking thread's mask into the child)
    until it can act on it. uWSGI ignores SIGHUP in a worker until it
    installs its handler, after the app's own at-fork hooks (a respawned one
    even ran the master's reload there): a stop, or a reload's retirement,
    that came meanwhile was lost, and the worker went on until it was killed
    past its budget. A sync worker lets it through where it accepts (app.ini,
    [sync]); a gevent worker once its loop runs, where gevent's handler
    replaces uWSGI's (whose exit skips the app's exit handlers). The
    master's own mask is back as it was at once."""
    held = {}

    def before() -> None:
        held["mask"] = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})

    def after_in_parent() -> None:
        if "mask" in held:  # not without its `before` (uWSGI calls both)
            signal.pthread_sigmask(signal.SIG_SETMASK, held.pop("mask"))

    hooks = {"before": before, "after_in_parent": after_in_parent}
    if gevent_mode:
        def after_in_child() -> None:
            import gevent
            # The first greenlet to run once uWSGI's gevent loop has set its
            # handlers and joins the hub.
            gevent.spawn(signal.pthread_sigmask, signal.SIG_UNBLOCK, {signal.SIGHUP})
        hooks["after_in_child"] = after_in_child
    return hooks


def end_at_an_interrupt() -> None:
    """An at-fork hook of a lazy-apps worker: SIGINT, with which uWSGI's
    master ends every worker at once (a sibling's import failed, or a stop
    with no grace), ends it as uWSGI's own handler does once the app is
    loaded: at once, with uWSGI's code. Until then the worker had Python's
    handler, from python3's start, so the app's import it interrupted raised
    KeyboardInterrupt: each sibling printed a traceback, and uWSGI said it
    "failed loading app", of an app that had not failed. A process the
    import forks gets Python's back (children.plain_signals)."""
    signal.signal(signal.SIGINT, ended_while_loading)


def ended_while_loading(number: int, frame) -> None:
    os._exit(UWSGI_ENDED)


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
    (recycling, harakiri, a crash now and then) reset the count.

    The workers still up then (ones that started before the crashes began,
    serving) would die with the master (no-orphans: the kernel's SIGKILL),
    their requests cut and the app's exit handlers (an SDK's last flush)
    never run. They end as at a stop instead, before the master exits: they
    finish their requests and run the exit handlers, within what a stop
    leaves an idle pool's workers (STOP_TIMEOUT less its margin and its
    masters' second: 8 s of the default 10); past it they are killed, and
    the log names the budget."""

    def __init__(self, marker: str, limit: int, host: Host | None = None, metrics_dir: str | None = None,
                 stop_timeout: int = STOP_TIMEOUT_SECONDS, workers: Callable[[], list[int]] | None = None):
        self.marker = marker
        self.limit = limit
        self.stop_timeout = stop_timeout
        self.workers = workers or (lambda: children(os.getpid()))
        self.forks = 0
        self.seen: int | None = None
        self.host = host or Host()
        self.oom_kills = self.host.oom_kills()
        self.metrics_dir = metrics_dir

    def stamp(self) -> int | None:
        try:
            return os.stat(self.marker).st_mtime_ns
        except FileNotFoundError:
            return None

    def after_fork(self) -> None:
        self.note_oom_kills()
        stamp = self.stamp()
        if stamp != self.seen:
            self.seen, self.forks = stamp, 0
        self.forks += 1
        if self.forks > self.limit:
            log(f"uWSGI forked {self.forks} workers in a row and none of them started (the reason is "
                "in the log above: a crash at fork, an at-fork hook, an extension module); giving up, "
                "so that a restart policy or orchestrator replaces this container")
            self.end_the_workers()
            os._exit(POOL_FAILED)

    def exit_budget(self) -> float:
        return exit_budget(self.stop_timeout)

    def end_the_workers(self) -> None:
        """SIGHUP, uWSGI's graceful stop of one worker, to every worker still
        up; the master, which forks no more meanwhile, waits for them."""
        budget = self.exit_budget()
        deadline = time.monotonic() + budget
        running = []
        for pid in self.workers():
            try:
                os.kill(pid, signal.SIGHUP)
                running.append(pid)
            except ProcessLookupError:
                pass
        sleep = real_sleep()
        while running and time.monotonic() < deadline:
            running = [pid for pid in running if not ended(pid)]
            if running:
                sleep(ENDED_EVERY)
        for pid in running:
            log(f"worker pid {pid} still ran its requests or the app's exit handlers {budget:g} s after the "
                f"pool gave up, past their budget (STOP_TIMEOUT {self.stop_timeout} s, {budget:g} s of it: "
                "what a stop leaves idle workers); killing it")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def note_oom_kills(self) -> None:
        """A respawn after the cgroup's oom_kill count rose: the worker that
        died was ended by the kernel's OOM killer (uWSGI's own line says only
        "killed by signal 9"). Named in the log, counted for METRICS_PORT."""
        kills = self.host.oom_kills()
        if kills is None or self.oom_kills is None or kills <= self.oom_kills:
            self.oom_kills = kills
            return
        new, self.oom_kills = kills - self.oom_kills, kills
        limit = self.host.memory_limit()
        log(f"the kernel's OOM killer ended {new} process(es) of this container (oom_kill {kills} in all; "
            f"memory limit {f'{limit >> 20} MB' if limit else 'none'}): a uWSGI worker it killed is replaced "
            "now, and the requests its threads held were lost. Give the container more memory, lower "
            "UWSGI_THREADS, or set WORKER_MAX_MEMORY to replace a growing worker before it gets there")
        if self.metrics_dir:
            try:
                with open(f"{self.metrics_dir}/oom-kills", "a") as out:
                    out.write(f"{new}\n")
            except OSError:
                pass


def children(pid: int) -> list[int]:
    """The processes `pid` forked (the uWSGI master's: its workers)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def ended(pid: int) -> bool:
    """Whether a child of this process has exited (and reaps it)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def real_sleep() -> Callable[[float], None]:
    """time.sleep as Python has it, not gevent's (WORKER_CLASS=gevent patches
    the master too), whose loop does not run in the master."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("time", "sleep") if monkey else time.sleep
