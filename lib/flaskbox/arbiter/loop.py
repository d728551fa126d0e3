"""The arbiter's one loop, as gunicorn's arbiter has it: signal handlers only
queue (system.py), and each turn of the loop waits for the first of a
signal, a child's end, a mark written and the next deadline, then acts on
what came, in that order. Nothing else waits: a step that must wait for a
process (a server to stop, `nginx -t` to judge) is a child whose end calls
it back; one that waits for a file (a worker that accepts, nginx's pid
file) is a mark (`watch`), which the kernel says was written (events.py);
one that must wait for time is a deadline (`at`, `after`). The one thing
read at intervals is a retiring pool (generation.py): the end of a request,
or of a download uWSGI's offload thread sends, is no event another process
can wait on.

Every child it started is a Child, with a name for the log and what to do
when it ends, set once by its owner, who started it. It reaps every
process that ends, as PID 1 must: a child it does not know (an orphan the
kernel handed it) is reaped and forgotten."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from pathlib import Path

from .events import DEGRADED_WAIT


class Child:
    """A process of the arbiter's: its name in the log, its pid, and, once
    it has ended, its status as a shell says it (the exit code, or 128 plus
    the signal that ended it)."""

    def __init__(self, name: str, pid: int, ended: Callable[[Child], None]):
        self.name, self.pid, self.ended = name, pid, ended
        self.status: int | None = None
        # SIGKILL sent by the arbiter (a process slow to stop): what it
        # ended by was the arbiter's choice, not a failure of its own.
        self.killed = False

    @property
    def running(self) -> bool:
        return self.status is None

    def __repr__(self) -> str:
        return f"<{self.name} {self.pid}{'' if self.running else f' ended {self.status}'}>"


class Deadline:
    """An action the loop takes at a moment of its clock, unless cancelled."""

    def __init__(self, when: float, action: Callable[[], None]):
        self.when, self.action, self.cancelled = when, action, False

    def cancel(self) -> None:
        self.cancelled = True


class Mark:
    """A file the loop waits for: action() at each turn in which it may
    have been written, until cancelled."""

    def __init__(self, path: Path, action: Callable[[], None]):
        self.path, self.action, self.cancelled = path, action, False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self, system):
        self.system = system
        self.children: dict[int, Child] = {}
        self._deadlines: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._marks: list[Mark] = []
        # Set once the arbiter has its exit code: the rest of a turn acts no more.
        self.done = False

    def now(self) -> float:
        return self.system.now()

    # --- children ----------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], ended: Callable[[Child], None], **how) -> Child:
        """Starts argv (system.spawn says `how`); OSError when it cannot."""
        return self.adopt(name, self.system.spawn(argv, **how), ended)

    def adopt(self, name: str, pid: int, ended: Callable[[Child], None]) -> Child:
        """A process the loop did not start but will reap and report: the
        JSON log relay the entry-point started, an orphan to wait for."""
        child = Child(name, pid, ended)
        self.children[pid] = child
        return child

    def signal(self, children: Iterable[Child | None], signal: int) -> None:
        for child in children:
            if child is not None and child.running:
                self.system.kill(child.pid, signal)

    # --- deadlines ---------------------------------------------------------------------------
    def at(self, when: float, action: Callable[[], None]) -> Deadline:
        deadline = Deadline(when, action)
        heapq.heappush(self._deadlines, (when, next(self._order), deadline))
        return deadline

    def after(self, seconds: float, action: Callable[[], None]) -> Deadline:
        return self.at(self.now() + seconds, action)

    # --- marks ------------------------------------------------------------------------------
    def watch(self, path: Path, action: Callable[[], None]) -> Mark:
        """action() whenever path is written from now on (made, written and
        closed, renamed in, touched), until the mark is cancelled: whether
        it says what is awaited is the action's to judge. It may have been
        written already: the caller looks once itself. OSError when its
        folder cannot be watched."""
        self.system.watch(path.parent)
        mark = Mark(path, action)
        self._marks.append(mark)
        return mark

    def _look(self, written: list[Path] | None) -> None:
        if written is None or written:
            paths = None if written is None else set(written)
            for mark in list(self._marks):
                if not self.done and not mark.cancelled and (paths is None or mark.path in paths):
                    mark.action()
        # A folder no mark waits on wakes the loop no more.
        folders = {mark.path.parent for mark in self._marks}
        self._marks = [mark for mark in self._marks if not mark.cancelled]
        for folder in folders - {mark.path.parent for mark in self._marks}:
            self.system.unwatch(folder)

    # --- a turn ------------------------------------------------------------------------------
    def turn(self, on_signal: Callable[[int], None]) -> None:
        """Waits for a signal, a child's end, a mark written or the next
        deadline, then acts: each signal the handlers queued (on_signal),
        each child reaped, each mark written, each deadline due."""
        while self._deadlines and self._deadlines[0][2].cancelled:
            heapq.heappop(self._deadlines)
        timeout = max(0.0, self._deadlines[0][0] - self.now()) if self._deadlines else None
        if not self.system.watching and any(not mark.cancelled for mark in self._marks):
            timeout = DEGRADED_WAIT if timeout is None else min(timeout, DEGRADED_WAIT)
        for signal in self.system.wait(timeout):
            if not self.done:
                on_signal(signal)
        for pid, status in self.system.reap():
            child = self.children.pop(pid, None)
            if child is not None:
                child.status = status
                if not self.done:
                    child.ended(child)
        self._look(self.system.written())
        now = self.now()
        while self._deadlines and self._deadlines[0][0] <= now and not self.done:
            deadline = heapq.heappop(self._deadlines)[2]
            if not deadline.cancelled:
                deadline.action()
