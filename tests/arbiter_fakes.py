"""A fake operating system for the arbiter (lib/flaskbox/arbiter/), so that
its lifecycle runs in process, in milliseconds: a clock that jumps to the
next thing that happens, and processes that follow a script (a uWSGI
master that imports for a while, holds requests, stops when told, or not;
nginx that drains; helpers that start and die). Files are real, in a
temporary RUNTIME_DIR: the marks the fake servers leave are the ones the
real ones do (a generation's `ready`, nginx's pid file), and the wait
wakes on one only in a folder the arbiter watches, as inotify's does.

    system = FakeSystem(tmp_path)
    arbiter = system.arbiter(TIMEOUT=..., env={...})
    system.run_until(lambda: ..., limit=60)   # turns of the loop

What a test does to the processes (a signal to PID 1, a kill -9, a request
that ends at some time) it schedules at a time of the fake clock."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from arbiter_fake_files import WatchedFiles
from fake_host import resolve
from flaskbox.arbiter.arbiter import Arbiter
from flaskbox.arbiter.loop import Child
from helpers import REPO

# How long a killed process takes to become a zombie: the window in which
# the kernel shows it exiting (PF_EXITING) and its pool cannot be read.
EXIT_LAG = 0.01


class Process:
    """A fake process: its argv, and what it does on each signal."""

    def __init__(self, system: FakeSystem, pid: int, argv: list[str]):
        self.system, self.pid, self.argv = system, pid, argv
        self.status: int | None = None
        self.exiting = False
        self.signals: list[tuple[float, str]] = []
        self.stopped = False  # SIGSTOP: signals other than SIGKILL wait
        self.children: list[Process] = []

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def started(self) -> None:
        """What it does once started."""

    def signalled(self, number: int) -> None:
        """What it does on a signal other than SIGKILL (default: dies of it)."""
        if number not in (signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH):
            self.exit(128 + number)

    def exit(self, status: int, lag: float = 0.0) -> None:
        """Ends with status, a zombie after lag seconds (exiting meanwhile)."""
        if self.status is not None or self.exiting:
            return
        self.exiting = True
        self.system.after(lag, lambda: self._gone(status))

    def _gone(self, status: int) -> None:
        self.status = status
        self.system.ended.append(self)
        for child in self.children:
            # uWSGI's no-orphans: the workers die with their master.
            child.exit(128 + signal.SIGKILL)


class Command(Process):
    """A command that ends by itself: `nginx -t` (exit code per the test)."""

    def started(self) -> None:
        self.exit(self.system.nginx_test_status(), lag=0.05)


class Master(Process):
    """A uWSGI master: imports for a while, then its workers accept; each
    request a test gives it runs on a worker until its end."""

    def started(self) -> None:
        placeholder = next(arg for arg in self.argv if arg.startswith("flaskbox_generation="))
        self.dir = Path(placeholder.split("=", 1)[1])
        self.number = int(self.dir.name[1:])
        self.script = self.system.masters.get(self.number, MasterScript())
        self.requests: dict[int, float] = {}  # worker pid -> when its request ends
        self.workers = [self.system.process(["flaskbox uWSGI worker"], parent=self) for _ in range(4)]
        self.terminating = False
        if self.script.fails_with is not None:
            self.system.after(self.script.import_seconds, self._fail)
        elif self.script.import_seconds is not None:
            self.system.after(self.script.import_seconds, self._ready)

    def _fail(self) -> None:
        for name, text in self.script.marks.items():
            (self.dir / name).write_text(text)
        self.exit(self.script.fails_with)

    def _ready(self) -> None:
        if self.status is None and not self.exiting:
            (self.dir / "app.json").write_text(json.dumps(self.script.app))
            self.system.write(self.dir / "ready", "")

    def request(self, seconds: float) -> Process:
        """A request on a free worker, for `seconds` (float("inf"): stuck)."""
        worker = next(worker for worker in self.workers if worker.status is None and not self.busy(worker))
        self.requests[worker.pid] = self.system.now() + seconds
        return worker

    def busy(self, worker: Process) -> bool:
        return (worker.status is None and not worker.exiting
                and self.requests.get(worker.pid, 0) > self.system.now())

    def holds(self) -> int:
        return sum(1 for worker in self.workers if self.busy(worker))

    def signalled(self, number: int) -> None:
        if number == signal.SIGTERM:
            if not self.terminating:
                self.terminating = True
                self._stop_when_idle()
        elif number != signal.SIGURG:
            super().signalled(number)

    def _stop_when_idle(self) -> None:
        """A graceful stop: the idle workers exit, the busy ones once done."""
        if self.status is not None or self.exiting:
            return
        if self.holds() == 0 and self.script.stops_after is not None:
            self.exit(0, lag=self.script.stops_after)
        else:
            self.system.after(0.05, self._stop_when_idle)


@dataclass
class MasterScript:
    import_seconds: float | None = 1.0  # None: imports for ever
    fails_with: int | None = None       # exits with this code after import_seconds
    marks: dict = field(default_factory=dict)  # files written as it fails: import-stacks, failed
    stops_after: float | None = 0.1     # once idle after SIGTERM; None: never (a slow master)
    app: dict = field(default_factory=lambda: {"flask": True, "static_folder": "/app/static",
                                               "static_url_path": "/static"})


class Nginx(Process):
    def started(self) -> None:
        if self.system.nginx_fails_with is not None:
            self.exit(self.system.nginx_fails_with, lag=0.05)
            return
        self.reloads = 0
        self.workers = [self.system.process(["nginx: worker process"], parent=self) for _ in range(2)]
        # Its workers outlive it (PID 1 adopts them): not uWSGI's no-orphans.
        self.children = []
        self.system.after(0.05, lambda: self.system.write(self.system.runtime.nginx_pid, f"{self.pid}\n"))

    def signalled(self, number: int) -> None:
        if number == signal.SIGQUIT:
            # It drains what it proxies, for worker_shutdown_timeout at most.
            if not self.system.nginx_stuck:
                now = self.system.now()
                ends = [end for master in self.system.masters_running() for end in master.requests.values()]
                drain = int(self.system.record.derived["STOP_DRAIN_SECONDS"])
                self.exit(0, lag=min(max([now, *ends]) - now, drain) + 0.05 + self.system.nginx_late)
        elif number == signal.SIGHUP:
            self.reloads += 1
        else:
            super().signalled(number)


class Helper(Process):
    def started(self) -> None:
        if self.argv[-1] == "metrics":
            if self.system.metrics_fails:
                self.exit(1, lag=0.05)
            else:
                self.system.after(self.system.metrics_after, lambda: self.system.write(
                    self.system.runtime.metrics_ready, ""))
        elif self.argv[-1] == "tls-apply":
            self.exit(0 if self.system.apply_certificate() else 1, lag=self.system.apply_seconds)


class FakeSystem(WatchedFiles):
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.clock, self.pid = 0.0, 1
        self._events: list = []
        self._order = itertools.count()
        self._pids = itertools.count(100)
        self.processes: dict[int, Process] = {}
        self.ended: list[Process] = []
        self.queued: list[int] = []
        self.masters: dict[int, MasterScript] = {}
        self.nginx_test_statuses: list[int] = []
        self.nginx_fails_with: int | None = None
        self.nginx_stuck = False  # ignores SIGQUIT
        self.nginx_late = 0.0  # seconds its drain ends late: a loaded machine's workers get a CPU late
        self.metrics_fails = False
        self.metrics_after = 0.05  # the metrics server's mark, that long after its start
        self.apply_seconds = 0.05  # what tls-apply takes
        self.start_watching()
        self.oom = 0
        self.free_pids: int | None = None
        self.pool_tasks: int | None = None  # tasks() of a pool; None: as many as a whole pool has
        self.spawned: list[list[str]] = []
        self.turns = 0
        self.delivered = 0  # signals PID 1 has taken
        self.reads: list[float] = []  # when a retiring pool was read
        self.during_read = None

    # --- the test's side -----------------------------------------------------------------------
    def arbiter(self, env: dict[str, str] | None = None, relay=None) -> Arbiter:
        resolved = resolve({"RUNTIME_DIR": str(self.tmp_path / "run"), **(env or {})})
        self.runtime_dir = Path(resolved.values["RUNTIME_DIR"])
        (self.runtime_dir / "nginx").mkdir(parents=True, exist_ok=True)
        (self.runtime_dir / "nginx" / "static.conf").write_text("# before the app\n")
        (self.runtime_dir / "metrics").mkdir(exist_ok=True)
        self.record = resolved.record()
        self.the_arbiter = Arbiter(self, self.record, {"PATH": "/usr/bin", "UWSGI_X": "1"}, relay, REPO)
        self.runtime = self.the_arbiter.runtime
        return self.the_arbiter

    def at(self, when: float, action) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def after(self, seconds: float, action) -> None:
        self.at(self.clock + seconds, action)

    def send(self, when: float, number: int) -> None:
        """A signal to PID 1 at `when`."""
        self.at(when, lambda: self.queued.append(number))

    def run_until(self, done, limit: float = 120.0) -> float:
        """Turns of the arbiter's loop until done() or its exit; the clock then."""
        arbiter = self.the_arbiter
        if not getattr(self, "_started", False):
            self._started = True
            arbiter.start()
        while not done() and arbiter.exit_code is None:
            if self.clock > limit:
                raise AssertionError(f"still waiting at {self.clock:.2f} s")
            arbiter.loop.turn(arbiter.on_signal)
        return self.clock

    def run_to_exit(self, limit: float = 120.0) -> int:
        self.run_until(lambda: False, limit)
        return self.the_arbiter.exit_code

    def named(self, prefix: str) -> list[Process]:
        return [process for process in self.processes.values()
                if process.command.startswith(prefix) and process.status is None and not process.exiting]

    def master(self, number: int) -> Master:
        return next(process for process in self.processes.values()
                    if isinstance(process, Master) and process.number == number)

    def masters_running(self) -> list[Master]:
        return [process for process in self.processes.values()
                if isinstance(process, Master) and process.status is None]

    def nginx(self) -> Nginx:
        return next(process for process in self.processes.values() if isinstance(process, Nginx))

    def nginx_test_status(self) -> int:
        return self.nginx_test_statuses.pop(0) if self.nginx_test_statuses else 0

    def process(self, argv: list[str], parent: Process | None = None) -> Process:
        kind = Process
        if argv[0] == "uwsgi":
            kind = Master
        elif argv[:2] == ["nginx", "-t"]:
            kind = Command
        elif argv[0] == "nginx":
            kind = Nginx
        elif argv[0] == "python3":
            kind = Helper
        process = kind(self, next(self._pids), argv)
        self.processes[process.pid] = process
        if parent is not None:
            parent.children.append(process)
        process.started()
        return process

    # --- what the arbiter sees (system.System's interface) -------------------------------------
    def now(self) -> float:
        return self.clock

    def wait(self, timeout: float | None) -> list[int]:
        self.turns += 1
        if not self.queued and not self.ended and not self._written:
            until = self.clock + timeout if timeout is not None else None
            if self._events and (until is None or self._events[0][0] <= until):
                until = self._events[0][0]
            # A second at most: a test's own look at the clock between two
            # turns, not the arbiter's (which waits on events, not time).
            until = self.clock + 1.0 if until is None else min(until, self.clock + 1.0)
            self.clock = max(self.clock, until)
            while self._events and self._events[0][0] <= self.clock:
                heapq.heappop(self._events)[2]()
        taken, self.queued = self.queued, []
        self.delivered += len(taken)
        return taken

    def spawn(self, argv, env=None, stdin=None, stdout=None, stderr=None) -> int:
        self.spawned.append(argv)
        return self.process(argv).pid

    def kill(self, pid: int, number: int) -> None:
        process = self.processes.get(pid)
        if process is None or process.status is not None:
            return
        process.signals.append((self.clock, signal.Signals(number).name))
        if number == signal.SIGKILL:
            process.exit(128 + signal.SIGKILL, lag=EXIT_LAG)
        elif number == signal.SIGSTOP:
            process.stopped = True
        elif not process.stopped:
            process.signalled(number)

    def reap(self) -> list[tuple[int, int]]:
        ended, self.ended = self.ended, []
        return [(process.pid, process.status) for process in ended]

    def running(self, pid: int) -> bool:
        process = self.processes.get(pid)
        return process is not None and process.status is None and not process.exiting

    def children(self, pid: int) -> list[int]:
        if pid == self.pid:
            # PID 1's: what it started, and the orphans handed to it.
            return [p.pid for p in self.processes.values() if p.status is None and not self._has_parent(p)]
        process = self.processes.get(pid)
        return [child.pid for child in process.children if child.status is None] if process else []

    def _has_parent(self, process: Process) -> bool:
        return any(process in other.children and other.status is None and not other.exiting
                   for other in self.processes.values())

    def command(self, pid: int) -> str:
        process = self.processes.get(pid)
        return process.command if process and process.status is None else ""

    def holds(self, files, master: int) -> int | None:
        """As kernel.holds: a reading counts only if its master ran before
        and after it (during_read: what happens while the pool is read)."""
        process = self.processes.get(master)
        if not self.running(master):
            return None
        held = process.holds()
        self.reads.append(self.clock)
        if self.during_read is not None:
            self.during_read()
        return held if self.running(master) else None

    def busy(self, folder, pids: list[int]) -> list[int]:
        masters = [process for process in self.processes.values() if isinstance(process, Master)]
        return [pid for pid in pids for master in masters
                if self.processes[pid] in master.workers and master.busy(self.processes[pid])]

    def oom_kills(self) -> int | None:
        return self.oom

    def pids_free(self) -> int | None:
        return self.free_pids

    def tasks(self, pids: list[int]) -> int:
        return 10_000 if self.pool_tasks is None else self.pool_tasks


@contextlib.contextmanager
def serving_with_a_relay(tmp_path: Path):
    """A serving FakeSystem whose arbiter took over the JSON log relay the
    entry-point started (LOG_FORMAT=json): (the system, the relay, its
    pipe's and stderr's descriptors), real ones, closed afterwards."""
    pipe_read, pipe_write = os.pipe()
    stderr = os.dup(2)
    try:
        system = FakeSystem(tmp_path)
        relay = system.process(["python3", "-I", "-m", "flaskbox", "json-log"])
        arbiter = system.arbiter({"LOG_FORMAT": "json"}, relay=(relay.pid, pipe_write, stderr))
        system.run_until(lambda: arbiter.serving)
        yield system, relay, (pipe_write, stderr)
    finally:
        for fd in (pipe_read, pipe_write, stderr):
            with contextlib.suppress(OSError):
                os.close(fd)


def lines(capsys) -> list[str]:
    """flaskbox's lines on stderr so far."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("flaskbox:")]


__all__ = ["Child", "FakeSystem", "MasterScript", "lines", "serving_with_a_relay"]
