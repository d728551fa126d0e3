"""The threads an app's import leaves running, found in uWSGI's master
before it forks the workers (wsgi.py).

A fork copies only the thread that forks. Whatever else the import started
lives on in the master alone: a worker inherits the thread's objects but
not the thread. An asyncio loop run in a thread (SearXNG's outgoing
network) never runs a worker's coroutines, so each request waits out its
timeout; a background scheduler (APScheduler) never fires; a Rust
runtime's worker threads (opendal's tokio, under Dify's storage) are gone
while its locks and queues say they run, so a call hangs or crashes the
worker. Python's `threading` sees none of the native ones, so the census
is the kernel's task list, before and after the import: what is new is the
app's (the image starts none in the master meanwhile but importing's
Deadline watchdog, which is there before). A Python thread is named with
where it was started (threading.Thread.start is watched while the app
imports); a native one by the name the kernel has for it. A native thread
counts only if it outlives a fork: fork-safe libraries stop theirs in a
pthread_atfork handler and start them again when next used in the child
(OpenBLAS, under `import numpy`: 1 thread a CPU but one; loaded in each of
4 workers for it, a numpy app took 142 MB where preloaded it took 58), so
the master forks once, a child that exits at once (fork_once), and counts
again.

An app that leaves none keeps the import in the master and the memory its
workers share. One that leaves some is loaded in each worker instead (the
arbiter starts the pool again with lazy-apps: generation.py), where its
threads run beside the requests that need them. Not one whose import
listens on a TCP port (prometheus_client's start_http_server, a thread that
serves it): a second worker could not bind it again, its import would fail,
and uWSGI's need-app would end the container; it stays preloaded, as it
served before, its threads in the master."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

from .census import Census

# A line names at most this many threads; the rest are counted.
NAMED = 6
# Seconds the trial fork's child has to run its at-fork hooks and exit
# (fork_once): it runs no more than they do, in milliseconds.
FORK_WAIT = 5.0
FORK_POLL = 0.005


def task_name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def listening(inodes) -> list[int]:
    """The TCP ports on which these sockets listen (state 0A in the kernel's
    tables, which list the whole network namespace: only ours are kept)."""
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    if fields[3] == "0A" and int(fields[9]) in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(ports)


def fork_once(wait: float = FORK_WAIT) -> None:
    """A fork whose child exits at once: the libraries' own at-fork
    handlers run, as they will for each worker (Python's with them). The
    plain fork, not gevent's patched one, which would leave a child
    watcher, and libev's SIGCHLD handler, in uWSGI's master; and a wait
    with a bound, since an app's at-fork hook may hang in a child of a
    process with threads. Polled: SIGCHLD may go to any of the app's
    threads, and gevent's sleep would run its loop in the master
    (sigtimedwait on no signal is a plain sleep, which gevent leaves alone)."""
    import posix
    import signal
    import warnings
    with warnings.catch_warnings():
        # Python 3.12+: "This process is multi-threaded, use of fork() may
        # lead to deadlocks": the child only runs the at-fork hooks, and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = posix.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + wait
    while posix.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            posix.waitpid(pid, 0)
            return
        signal.sigtimedwait(set(), FORK_POLL)


@dataclass(frozen=True)
class Left:
    """A thread the import left running: where it was started, and whether
    all it does is wait for the process's end (ends_with_it)."""
    name: str
    python: bool
    where: str = ""
    ends_with_it: bool = False

    def __str__(self) -> str:
        if not self.python:
            return f'"{self.name}" (native)'
        return f'"{self.name}" (Python, started at {self.where})' if self.where else f'"{self.name}" (Python)'


def waits_for_the_end(thread: threading.Thread) -> bool:
    """Whether a Python thread's only work now is to wait for the main
    thread to end (threading.main_thread().join(): python-oracledb's
    close_pools_gracefully, which then closes the pools). What it does
    next runs at the end of the process it is in; a forked worker, whose
    main thread is its own, does not need it meanwhile. Read from the
    frames it waits in: any other thread's purpose cannot be told."""
    frame = sys._current_frames().get(thread.ident)
    join, main = threading.Thread.join.__code__, threading.main_thread()
    while frame is not None:
        if frame.f_code is join and frame.f_locals.get("self") is main:
            return True
        frame = frame.f_back
    return False


def listens(census: Census) -> list[int]:
    """The TCP ports the import began to listen on."""
    return listening(set(census.new_sockets()))


def gevents_own() -> int:
    """How many native threads gevent's hub has: its threadpool's (its
    default resolver looks each name up there: redis-py's first connect, at
    import) and its monitoring thread's. gevent starts them afresh in a
    forked process (gevent.hub.reinit: the threadpool's _on_fork), so a
    worker has them when it needs them."""
    local = sys.modules.get("gevent._hub_local")
    hub = getattr(local, "get_hub_if_exists", lambda: None)()
    if hub is None:
        return 0
    pool = getattr(hub, "_threadpool", None)
    monitor = getattr(hub, "periodic_monitoring_thread", None)
    return (getattr(pool, "size", 0) if pool is not None else 0) + (monitor is not None)


def left(census: Census) -> list[Left]:
    """The kernel's new tasks, named by their Python thread if they have
    one, but for gevent's own (gevents_own: unnamed native ones, as many);
    then the Python threads started meanwhile that are greenlets (gevent's
    patched threading), which the kernel does not see and a fork does not
    carry on either: their hub never runs them again."""
    new = census.new_tasks()
    unnamed = task_name(os.getpid())
    gevent = gevents_own()
    if gevent:
        python_ids = {thread.native_id for thread in threading.enumerate()}
        own = [tid for tid in sorted(new) if tid not in python_ids and task_name(tid) == unnamed][:gevent]
        new -= set(own)
    python = {thread.native_id: thread for thread in threading.enumerate()
              if getattr(thread, "native_id", None) in new}
    found = [Left(task_name(tid), python=False) if tid not in python else
             Left(python[tid].name, True, getattr(python[tid], "_flaskbox_started_at", ""),
                  waits_for_the_end(python[tid]))
             for tid in sorted(new)]
    named = set(map(id, python.values()))
    found += [Left(thread.name, True, getattr(thread, "_flaskbox_started_at", ""))
              for thread in census.started if id(thread) not in named and thread.is_alive()]
    return found


def end_with_it(left: list[Left]) -> str:
    """The start's line for threads that only wait for the master's end."""
    names = ", ".join(map(str, left[:NAMED]))
    return (f"the app's import left {len(left)} thread(s) in uWSGI's master that only wait for its end: "
            f"{names}. A forked worker has its own end and does not need them before it: the app stays "
            "loaded once, in the master")


def found(left: list[Left]) -> str:
    """What the start's lines begin with: the threads, the first NAMED by name."""
    names = ", ".join(map(str, left[:NAMED]))
    more = f" and {len(left) - NAMED} more" if len(left) > NAMED else ""
    return f"the app's import left {len(left)} thread(s) running in uWSGI's master: {names}{more}"


def said(left: list[Left], processes: int, grown: int) -> str:
    """The start's line: what was found, what is done, what it costs."""
    megabytes = max(round(grown / (1 << 20)), 1)
    return (f"{found(left)}. A fork "
            f"does not copy threads, so forked workers would have their objects but not them: each of the "
            f"{processes} worker(s) loads the app itself instead (lazy-apps), its threads with it, which "
            f"costs about {megabytes} MB a worker (the import's size) where preloaded workers would share "
            "one copy. Set UWSGI_LAZY_APPS=true to skip the first import, or UWSGI_LAZY_APPS=false to keep "
            "preloading if the app restarts its threads after a fork (os.register_at_fork)")


def kept(left: list[Left], ports: list[int]) -> str:
    """The start's line for an app that stays preloaded though its import
    left threads: it listens on a port each worker could not bind again."""
    listens = ", ".join(map(str, ports))
    return (f"{found(left)}, and "
            f"listens on port(s) {listens} (a metrics server, say), which a second worker loading the app "
            "could not bind again: the app stays loaded once, in the master, where those threads run; the "
            "workers, forked from it, have their objects but not them. Start what the workers need after "
            "a fork (os.register_at_fork), or listen from the app's routes instead")
