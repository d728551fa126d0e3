"""The real operating system under the arbiter: its clock, its signals (the
handlers only queue them), starting, signalling and reaping processes, and
what the kernel's tables say of them (kernel.py). The in-process tests give
the arbiter a fake one instead (tests/arbiter_fakes.py), with processes
that follow a script and a clock that jumps."""

from __future__ import annotations

import errno
import os
import select
import signal
import time

from ..host import Host
from ..log import warn
from . import kernel
from .events import DEGRADED_WAIT, Inotify, Unwatched

# The signals the arbiter acts on: the stop (docker stop sends TERM; INT
# and QUIT stop too), the reload, and a child's end, which only wakes it.
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)


class System:
    def __init__(self, host: Host | None = None):
        self.host = host or Host()
        self.pid = os.getpid()
        self._queued: list[int] = []
        # A signal writes a byte here (the C handler, at once): the loop's
        # wait wakes even when the signal came just before it began.
        self._wake_read, self._wake_write = os.pipe()
        for fd in (self._wake_read, self._wake_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        for number in HANDLED:
            signal.signal(number, self._queue)
        # The entry-point execs Python with these blocked, so that a stop
        # that came during Python's start waited, pending: it is queued now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        self._devnull = os.open(os.devnull, os.O_RDONLY)
        # The marks the arbiter waits for wake its wait too (events.py).
        try:
            self._inotify: Inotify | None = Inotify()
            self.unwatched: str | None = None
        except Unwatched as exc:
            self._inotify, self.unwatched = None, exc.strerror

    def _queue(self, number: int, frame) -> None:
        """The handler: queue, nothing more."""
        self._queued.append(number)

    # --- the clock and the wait --------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def wait(self, timeout: float | None) -> list[int]:
        """Returns the signals queued, once one came or `timeout` passed."""
        if not self._queued:
            select.select([self._wake_read, *self._watched()], [], [], timeout)
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass
        taken, self._queued = self._queued, []
        return taken

    # --- files written ------------------------------------------------------------------------
    @property
    def watching(self) -> bool:
        """Whether a file written wakes the wait (events.py)."""
        return self._inotify is not None

    def _watched(self) -> list[int]:
        return [] if self._inotify is None else [self._inotify.fd]

    def watch(self, folder) -> None:
        """A file written in folder wakes the wait from now on; OSError
        when the folder is missing. Past the kernel's limit on watches
        (fs.inotify.max_user_watches), the loop looks at each short wait."""
        if self._inotify is None:
            return
        try:
            self._inotify.watch(folder)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise
            os.close(self._inotify.fd)
            self._inotify, self.unwatched = None, exc.strerror
            warn(f"the arbiter cannot watch {folder} ({exc.strerror}: fs.inotify.max_user_watches, counted "
                 "per user on the whole host): it looks for the marks it waits for every "
                 f"{DEGRADED_WAIT * 1000:.0f} ms instead")

    def unwatch(self, folder) -> None:
        if self._inotify is not None:
            self._inotify.unwatch(folder)

    def written(self):
        """The files written in the folders watched since the last call;
        None: any of them may have been."""
        return None if self._inotify is None else self._inotify.read()

    # --- processes ---------------------------------------------------------------------------
    def spawn(self, argv: list[str], env: dict[str, str] | None = None, stdin: str | None = None,
              stdout: int | None = None, stderr: int | None = None) -> int:
        """argv started with env (None: the arbiter's own), signals as a new
        program starts (none blocked, none ignored), stdin from /dev/null or
        the file named, stdout and stderr the arbiter's unless given."""
        actions = []
        opened = os.open(stdin, os.O_RDONLY) if stdin else None
        actions.append((os.POSIX_SPAWN_DUP2, self._devnull if opened is None else opened, 0))
        for fd, target in ((stdout, 1), (stderr, 2)):
            if fd is not None:
                actions.append((os.POSIX_SPAWN_DUP2, fd, target))
        try:
            return os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                                   setsigmask=(), setsigdef=DEFAULTED)
        finally:
            if opened is not None:
                os.close(opened)

    def kill(self, pid: int, number: int) -> None:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass

    def reap(self) -> list[tuple[int, int]]:
        """Every child that has ended, with its status as a shell says it."""
        ended = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return ended
            if pid == 0:
                return ended
            code = os.waitstatus_to_exitcode(status)
            ended.append((pid, code if code >= 0 else 128 - code))

    # --- what the kernel says ----------------------------------------------------------------
    running = staticmethod(kernel.running)
    children = staticmethod(kernel.children)
    tasks = staticmethod(kernel.tasks)
    command = staticmethod(kernel.command)
    holds = staticmethod(kernel.holds)
    busy = staticmethod(kernel.busy)

    def oom_kills(self) -> int | None:
        return self.host.oom_kills()

    def pids_free(self) -> int | None:
        """How many more processes and threads the pids limit allows now."""
        limit, current = self.host.pids_limit(), self.host.pids_current()
        return None if limit is None or current is None else limit - current


# Signals a new program must not find ignored: Python ignores SIGPIPE (and
# SIGXFSZ), and the entry-point had the stop's and SIGHUP's traps.
DEFAULTED = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP,
             signal.SIGCHLD)
