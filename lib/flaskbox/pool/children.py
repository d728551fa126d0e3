"""The processes an app starts in a request (a multiprocessing pool, os.fork,
subprocess) start as they would under plain Python, not as a piece of a
uWSGI worker.

uWSGI blocks every signal in its request threads but the first, so that the
worker's main thread takes them, and a new process inherits the mask of the
thread that made it. A child of one of those threads could not be stopped
with SIGTERM: `with multiprocessing.Pool() as pool` ends in terminate(),
which then waited for its children for ever, about one request in 24 (the
pool's own race decides whether they have already left); a program run with
subprocess ignored Popen.terminate(), and one that waits on SIGALRM or
SIGCHLD never got them. A forked child also kept the worker's handlers: its
SIGTERM ran a uWSGI worker's reload in it.

- A fork made by a worker (or a process it made) resets, in the child, the
  signal mask and every handler that is not the app's Python code: the C
  handlers uWSGI installed (SIGINT gets Python's KeyboardInterrupt back)
  and flaskbox's stream-stop handler and its wakeup descriptor, which
  wrote to the worker's pipe, and its handler of a lazy-apps worker's
  import (forks.end_at_an_interrupt).
- A program started by subprocess (os.popen too), and a Python started by
  multiprocessing's spawn and forkserver (Python 3.14's default), are
  spawned with the calling thread's mask opened for the spawn alone: a
  process image started by exec keeps only its mask. os.system and
  os.posix_spawn are not covered (docs/production.md says so).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading

from ..request.stopping import on_stop_signal
from .forks import ended_while_loading

# Never caught or blocked: the kernel refuses to change them.
FIXED = {signal.SIGKILL, signal.SIGSTOP}


def caught() -> set[int]:
    """The signals this process has a handler for, as the kernel sees them
    (Python's own table shows uWSGI's handlers as SIG_IGN)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                bits = int(line.split()[1], 16)
                return {number + 1 for number in range(bits.bit_length()) if bits >> number & 1}
    return set()


def plain_signals() -> None:
    """In a new process: no signal blocked, and every handler that is not
    the app's Python code (uWSGI's, flaskbox's) back to what a plain Python
    process starts with."""
    signal.set_wakeup_fd(-1)
    for number in caught() - FIXED:
        plain = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
        try:
            handler = signal.getsignal(number)
            if not callable(handler) or handler in (on_stop_signal, ended_while_loading):
                signal.signal(number, plain)
        except (OSError, ValueError):
            continue  # the C library's own (glibc's thread signals, 32 and 33)
    # Last: a SIGTERM already sent (Pool.terminate() at once) is held until
    # now, and then meets the default action, not uWSGI's handler.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def spawn_with_an_open_mask(execute_child):
    """subprocess.Popen._execute_child, with the thread's mask empty while
    it runs: the new program starts with the mask of the thread at the
    fork."""
    @functools.wraps(execute_child)
    def execute(*args, **kwargs):
        held = signal.pthread_sigmask(signal.SIG_SETMASK, ())
        try:
            return execute_child(*args, **kwargs)
        finally:
            if held:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
    execute.flaskbox_open_mask = True
    return execute


def start_plain(master: int) -> None:
    """In the uWSGI master, before its first fork: what its workers' own
    children start with. The master's forks (its workers) are left alone.
    The forking thread holds every signal across the fork, so that none
    reaches the child before its handlers are reset (uWSGI's SIGTERM
    handler, run in a child, waited there for threads it does not have)."""
    held = threading.local()

    def before() -> None:
        if os.getpid() != master:
            held.mask = signal.pthread_sigmask(signal.SIG_SETMASK, signal.valid_signals())

    def after_in_parent() -> None:
        if os.getpid() != master:
            signal.pthread_sigmask(signal.SIG_SETMASK, held.mask)

    def after_in_child() -> None:
        if os.getppid() != master:
            plain_signals()

    os.register_at_fork(before=before, after_in_parent=after_in_parent, after_in_child=after_in_child)
    import multiprocessing.util as multiprocessing_util  # spawn's and forkserver's exec: spawnv_passfds
    for owner, name in ((subprocess.Popen, "_execute_child"), (multiprocessing_util, "spawnv_passfds")):
        if not getattr(getattr(owner, name), "flaskbox_open_mask", False):
            setattr(owner, name, spawn_with_an_open_mask(getattr(owner, name)))
