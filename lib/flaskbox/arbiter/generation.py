"""A generation of uWSGI's pool: one load of the app's code, run by its own
master in a folder of its own, $RUNTIME_DIR/uwsgi/gN (app.ini's
%(flaskbox_generation)). The start runs generation 1; each reload the next,
beside the one serving. Its states, in order:

    STARTING  its master imports the app; ready once a worker accepts
              (app.ini's hook-accepting1-once leaves the mark the loop
              waits for). An app whose import leaves threads running or
              connections shared (pool/preload.py) is loaded again, in
              each worker: a second master, with lazy-apps, as are the
              generations after it
    SERVING   nginx sends it every new request: `current` links to it
    RETIRING  a newer one serves: what it holds has RELOAD_GRACE to
              finish, read from the kernel; its event streams are ended a
              little before, and its WebSockets at once
    STOPPING  told to stop: its retirement's end, the container's stop, or
              a start given up; busy workers killed past the mercy, the
              master past its limit
    GONE      its master reaped, its folder removed

Whoever moved it into a state hears of the master's end in that state: the
start or the reload (STARTING: the load failed, and why), the arbiter
(SERVING: a death that ends the container), the reload (RETIRING: the
retirement's verdict), the stop (STOPPING). The master is the arbiter's
child, reaped the moment it ends: a master killed while its pool held
requests is a cut, said with what it held when last read, never a finish."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable

from ..layout import (
    IMPORT_FAILED,
    IMPORT_TIMED_OUT,
    LOADS_IN_EACH_WORKER,
    NOT_AN_APP,
    RUNTIME_UNWRITABLE,
    STOP_KILL_AFTER_SECONDS,
    STOP_MERCY_SECONDS,
    STOP_STREAMS_SIGNAL,
    exit_budget,
)
from ..log import error, info, warn
from ..userapp.importing import say_import_stacks
from .loop import Child

STARTING, SERVING, RETIRING, STOPPING, GONE = "starting", "serving", "retiring", "stopping", "gone"
# Seconds between two readings of a retiring pool (kernel.holds).
READ_EVERY = 0.2
# A master still importing this long past IMPORT_TIMEOUT is killed: its own
# deadline (importing.Deadline) should have ended it.
OVERDUE = 10
# Idle workers killed sooner than this after SIGTERM are not called slow:
# the mercy may be 0 (past RELOAD_GRACE).
SLOW = 0.5
STREAMS_SIGNAL = getattr(signal, f"SIG{STOP_STREAMS_SIGNAL}")
# Seconds before a budget's end that the event streams still open are
# ended: their last chunk reaches the client before nginx's drain, or the
# retirement, cuts what is left.
STREAMS_LEAD = 1.0


class Generation:
    def __init__(self, number: int, arbiter):
        self.number, self.arbiter = number, arbiter
        self.loop, self.system = arbiter.loop, arbiter.loop.system
        self.files = arbiter.runtime.generation(number)
        self.state = STARTING
        self.master: Child | None = None
        # What the pool held at its last reading while retiring (None: not
        # read yet, or never while its master ran).
        self.held: int | None = None
        self.grace_over = False
        self.overdue = False
        self.stopping_since = 0.0
        self.budget = ""
        # Whether each worker loads the app (uWSGI's lazy-apps): once an
        # app's import has left threads or connections, for every later
        # generation too.
        self.lazy = getattr(arbiter, "lazy_apps", False)
        self.streams_end_at: float | None = None
        self._waits: list = []  # its deadlines and marks, cancelled as it changes state
        self._then: Callable | None = None          # told of the master's end in this state
        self._retired_then: Callable | None = None  # told once a retirement has ended

    def __repr__(self) -> str:
        return f"<generation {self.number} {self.state}>"

    @property
    def running(self) -> bool:
        return self.state != GONE

    # --- STARTING ------------------------------------------------------------------------------
    def make_folder(self) -> None:
        """Its folder, new (OSError: a full disk, say)."""
        shutil.rmtree(self.files.dir, ignore_errors=True)
        self.files.dir.mkdir(parents=True)

    def start(self, ready: Callable[[Generation], None], failed: Callable[[Generation, int], None]) -> None:
        """Its master, importing the app; ready(self) once a worker accepts,
        failed(self, exit code) if the master ends first. OSError when uWSGI
        cannot be started."""
        ini = self.arbiter.runtime.uwsgi_ini
        self._ready, self._then = ready, failed
        # Watched before the start: a mark written meanwhile wakes the loop.
        self._waits.append(self.loop.watch(self.files.ready, self._look))
        try:
            # Its stdout (and so the app's print()) joins stderr: stdout is
            # kept for nginx's access log, one line per request.
            self.master = self.loop.spawn(
                f"uWSGI master (generation {self.number})",
                ["uwsgi", "--set-placeholder", f"flaskbox_generation={self.files.dir}", "--ini", str(ini),
                 *(["--lazy-apps"] if self.lazy else [])],
                self._master_ended, env=self.arbiter.server_env, stdout=2)
        except OSError:
            self._cancel()
            raise
        self.started = self.loop.now()
        timeout = self.arbiter.settings["IMPORT_TIMEOUT"]
        if timeout > 0:
            self._waits.append(self.loop.at(self.started + timeout + OVERDUE, self._kill_overdue))
        self._look()

    def _look(self) -> None:
        if self.state == STARTING and self.files.ready.exists():
            self._cancel()
            self._ready(self)

    def _kill_overdue(self) -> None:
        self.overdue = True
        self.loop.signal([self.master], signal.SIGKILL)

    def described(self) -> dict | None:
        """What its app said of itself once loaded (wsgi.py): None without."""
        try:
            return json.loads(self.files.app.read_text())
        except (OSError, ValueError):
            return None

    def why(self, status: int) -> str:
        """What a master's exit code before it was ready means (wsgi.py
        gives them)."""
        app, timeout = self.arbiter.settings["APP_MODULE"], self.arbiter.settings["IMPORT_TIMEOUT"]
        return {
            IMPORT_FAILED: f"could not load APP_MODULE='{app}': see the traceback above",
            NOT_AN_APP: f"APP_MODULE='{app}' does not name an app (see above)",
            RUNTIME_UNWRITABLE: f"uWSGI could not write its files in {self.arbiter.runtime.dir} (message "
                                "above; a full disk?)",
            IMPORT_TIMED_OUT: f"APP_MODULE='{app}' did not import within IMPORT_TIMEOUT ({timeout} s; where "
                              "it waited is above)",
        }.get(status, f"uWSGI exited with code {status} before it was ready; see its log above")

    def _load_failed(self, child: Child) -> int:
        """The exit code that says why the load failed, with an import past
        IMPORT_TIMEOUT said here: where it waited (its stacks), or that its
        own deadline did not end it."""
        stacks = self.files.import_stacks_dumped()
        if stacks is not None:
            settings = self.arbiter.settings
            say_import_stacks(stacks, settings["APP_MODULE"], settings["IMPORT_TIMEOUT"])
            return IMPORT_TIMED_OUT
        if self.overdue:
            error(f"APP_MODULE='{self.arbiter.settings['APP_MODULE']}' did not import within IMPORT_TIMEOUT "
                  f"({self.arbiter.settings['IMPORT_TIMEOUT']} s), nor stop; its uWSGI master is killed")
            return IMPORT_TIMED_OUT
        if child.status == IMPORT_FAILED:
            # The code the process that said why meant: a lazy-apps worker
            # ends with need-app's whatever it was (wsgi.failed).
            try:
                return int(self.files.failed.read_text())
            except (OSError, ValueError):
                pass
        return child.status or 1

    # --- SERVING -------------------------------------------------------------------------------
    def serve(self, died: Callable[[Generation, Child], None]) -> None:
        """nginx sends it every new request from now on: `current` links to
        it, swapped in one rename. OSError when the link cannot be made."""
        link = self.arbiter.runtime.uwsgi_dir / "current.new"
        link.unlink(missing_ok=True)
        link.symlink_to(self.files.dir.name)
        link.replace(self.arbiter.runtime.uwsgi_dir / "current")
        self.state, self._then = SERVING, died

    def end_streams(self, budget_end: float, occasion: str, budget: str) -> None:
        """At a stop or a retirement: its WebSockets end now (a close frame,
        1001 "going away"); its event streams finish by themselves until
        STREAMS_LEAD before `budget_end`, when those still open are ended
        cleanly and counted (stopping.py). The log names the occasion ("the
        stop") and the budget ("STOP_TIMEOUT 10 s"). A
        second call (a stop during a retirement) can only bring it nearer."""
        at = budget_end - STREAMS_LEAD
        if self.streams_end_at is not None and self.streams_end_at <= at:
            return
        self.streams_end_at = at
        said = f"{at}\t{occasion}\t{budget}\n"
        self._tell_streams(at, said)
        self._waits.append(self.loop.at(at, lambda: self._tell_streams(at, said)))

    def _tell_streams(self, at: float, said: str) -> None:
        """Each worker reads by when (the file), and acts on the signal."""
        if self.master is None or not self.master.running or self.streams_end_at != at:
            return
        try:
            # In one rename: a worker that reads it meanwhile (a sync worker's
            # main thread acts on a signal only when it next runs Python) must
            # never find it empty, which reads as "now".
            new = self.files.streams_end.with_name(f"{self.files.streams_end.name}.new")
            new.write_text(said)
            new.replace(self.files.streams_end)
        except OSError as exc:
            error(f"cannot write {self.files.streams_end} ({exc.strerror}; a full disk?): the event streams "
                  f"of generation {self.number} are ended at once")
            self.files.streams_end.unlink(missing_ok=True)
        for worker in self.system.children(self.master.pid):
            self.system.kill(worker, STREAMS_SIGNAL)

    # --- RETIRING ------------------------------------------------------------------------------
    def retire(self, retired: Callable[[Generation], None]) -> None:
        """Once a newer one serves: its streams end now; what else it holds
        has RELOAD_GRACE to finish, past which it is cut; then it stops.
        retired(self) once its master is gone, the verdict said."""
        self.state, self._retired_then = RETIRING, retired
        self.grace_end = self.loop.now() + self.arbiter.settings["RELOAD_GRACE"]
        grace = self.arbiter.settings["RELOAD_GRACE"]
        self.end_streams(self.grace_end, "the reload", f"RELOAD_GRACE {grace} s")
        self._read()

    def _read(self) -> None:
        if self.state != RETIRING:
            return
        held = self.system.holds(self.files, self.master.pid)
        if held is not None:
            self.held = held
        if held == 0:
            return self._stop_retired(idle=True)
        # held None: its master is ending, and its end decides.
        if held is not None and self.loop.now() >= self.grace_end:
            error(f"reload: {held} request(s) of the old code still in flight after RELOAD_GRACE "
                  f"({self.arbiter.settings['RELOAD_GRACE']}s): the old code stops now, and what it still "
                  "holds is cut")
            return self._stop_retired(idle=False)
        self._waits.append(self.loop.after(READ_EVERY, self._read))

    def _stop_retired(self, idle: bool) -> None:
        # Its requests ended: what RELOAD_GRACE has left goes to its workers'
        # exit, the app's exit handlers (an SDK's last flush), up to what a
        # stop would give them (STOP_TIMEOUT's), and STOP_MERCY_SECONDS at
        # the least: an exit that never ends (a worker uWSGI respawned into
        # the stopping pool) holds the old code's memory and the next
        # reload no longer than a stop would. Past the grace its master
        # stops at once, so that it forks no new worker.
        now = self.loop.now()
        longest = exit_budget(int(self.arbiter.settings["STOP_TIMEOUT"]))
        mercy = max(min(self.grace_end - now, longest), STOP_MERCY_SECONDS) if idle else 0
        self.grace_over = not idle
        self.stop(now + mercy, now + mercy + STOP_KILL_AFTER_SECONDS, self._retired,
                  f"RELOAD_GRACE {self.arbiter.settings['RELOAD_GRACE']} s, {mercy:.1f} s of it left after "
                  "their requests")

    def _retired(self, generation: Generation, child: Child) -> None:
        if self.grace_over:
            info(f"reload: the old code (generation {self.number}) has stopped")
        elif child.killed:
            info(f"reload: the old code (generation {self.number}) has finished its requests; its master, "
                 "slow to stop, was killed")
        else:
            info(f"reload: the old code (generation {self.number}) has finished its requests and stopped")
        self._retired_then(self)

    def _died_retiring(self) -> None:
        """Its master ended before it was told to stop: what the pool held
        then was cut with it."""
        who = f"reload: the old code's uWSGI master (generation {self.number}) ended before"
        if self.held:
            error(f"{who} its requests did (killed?): the {self.held} it held were cut")
        elif self.held is None:
            error(f"{who} its pool could be read (killed?): any request it held was cut")
        else:
            warn(f"{who} it was told to stop, holding no request")
        self._retired_then(self)

    # --- STOPPING ------------------------------------------------------------------------------
    def stop(self, mercy_at: float, kill_at: float, gone: Callable[[Generation, Child], None],
             budget: str = "") -> None:
        """SIGTERM to its master, which lets its idle workers exit (running
        the app's exit handlers); the workers still running at mercy_at are
        killed (uWSGI 2.0 does not enforce its mercy in a graceful stop), the
        master at kill_at. `budget` names what mercy_at comes from, for the
        log. gone(self, master) once it is reaped."""
        self._cancel()
        self.budget = f" (their budget: {budget})" if budget else ""
        if self.state != STOPPING:
            self.stopping_since = self.loop.now()
        self.state, self._then = STOPPING, gone
        self.loop.signal([self.master], signal.SIGTERM)
        self._waits += [self.loop.at(mercy_at, self._kill_workers),
                            self.loop.at(kill_at, self._kill_master)]

    def abandon(self, gone: Callable[[Generation, Child], None] = lambda generation, child: None) -> None:
        """A start that will not serve: its master killed at once."""
        self._cancel()
        self.state, self._then = STOPPING, gone
        if self.master.running:
            self.master.killed = True
        self.loop.signal([self.master], signal.SIGKILL)

    def _kill_workers(self) -> None:
        """The workers still running past the mercy. nginx has drained
        first, so no client waits on them by then. The log says a request
        was cut only for a worker in one, and calls the master slow only if
        it had SLOW seconds to stop the idle ones."""
        if not self.master.running:
            return
        running = [pid for pid in self.system.children(self.master.pid) if self.system.running(pid)]
        if not running:
            return
        busy = self.system.busy(self.arbiter.runtime.uwsgi_dir, running)
        idle = [pid for pid in running if pid not in busy]
        if busy:
            with_idle = f"; its idle worker(s) {' '.join(map(str, idle))} with them" if idle else ""
            error(f"uWSGI worker(s) {' '.join(map(str, busy))} still in a request past their budget; killing "
                  f"them (their requests are cut){with_idle}{self.budget}")
        elif self.loop.now() - self.stopping_since >= SLOW:
            # Idle, and still there: Python's exit waited on past the budget
            # (a thread of the app that does not end, which it joins first,
            # or an exit handler), or the master did not end them (a loaded
            # machine).
            warn(f"uWSGI master {self.master.pid} is slow to stop its idle workers; killing them past their "
                 f"budget (no request was in flight){self.budget}: the app's exit handlers (an SDK's flush) "
                 "or a thread of the app (not a daemon) did not end within it, or the machine is loaded")
        for pid in running:
            self.system.kill(pid, signal.SIGKILL)

    def _kill_master(self) -> None:
        if self.master.running:
            warn(f"{self.master.name} {self.master.pid} is slow to stop: still running "
                 f"{self.loop.now() - self.stopping_since:.1f}s after it was told to stop; killing it")
            self.master.killed = True
            self.loop.signal([self.master], signal.SIGKILL)

    # --- the master's end ------------------------------------------------------------------------
    def _master_ended(self, child: Child) -> None:
        self._cancel()
        if self.state == STARTING and self._asks_for_each_worker(child):
            return self._load_in_each_worker()
        state, then = self.state, self._then
        self.state = GONE
        status = self._load_failed(child) if state == STARTING else child.status
        if state != SERVING:
            shutil.rmtree(self.files.dir, ignore_errors=True)
        if state == STARTING:
            then(self, status)
        elif state == SERVING:
            then(self, child)
        elif state == RETIRING:
            self._died_retiring()
        else:
            then(self, child)

    def _asks_for_each_worker(self, child: Child) -> bool:
        """Its master found threads the app's import left running or
        connections it left open, and said which (pool/preload.py): not an
        app that failed."""
        return (child.status == LOADS_IN_EACH_WORKER and not self.lazy and not self.arbiter.stopping
                and self.files.in_each_worker.exists())

    def _load_in_each_worker(self) -> None:
        """A second master, the same generation, each worker loading the app;
        and so every later generation (a reload) from the start."""
        self.lazy = self.arbiter.lazy_apps = True
        try:
            self.make_folder()
            self.start(self._ready, self._then)
        except OSError as exc:
            error(f"cannot start uWSGI again in {self.files.dir} ({exc.strerror or exc})")
            self.state = GONE
            self._then(self, RUNTIME_UNWRITABLE)

    def _cancel(self) -> None:
        for wait in self._waits:
            wait.cancel()
        self._waits = []
