"""The Arbiter: production's process tree, from the start to the exit code.

It starts the pool's first generation and the helpers, nginx once a worker
accepts (and the metrics server, if any, listens), and says "serving" once
nginx holds its port. Then it waits in its loop and acts on what comes:

    TERM, INT, QUIT        the stop (stop.Stop), once
    HUP                    a reload (reload.Reload); one that comes during a
                           reload waits for it to end
    a helper's end         it starts again (helpers.py)
    a retiring master's    the retirement's verdict (generation.py)
    nginx's or the serving
    uWSGI master's end     the container stops, non-zero (stop.Abort)

Its state is these objects: the generations, nginx, the helpers, the
reload, and the ending under way (the stop or the abort)."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from ..layout import (
    BAD_INPUT,
    FAILED,
    IMPORT_FAILED,
    IMPORT_TIMED_OUT,
    NOT_AN_APP,
    SIGNALLED,
    STOP_SIGNALS,
    Runtime,
)
from ..log import error, info, warn
from ..record import Record
from ..start.template import CONF_DIR
from .events import DEGRADED_WAIT
from .generation import Generation
from .helpers import Helper, Helpers
from .loop import Child, Loop
from .nginx import Nginx
from .reload import Reload
from .stop import Abort, Stop

# The certificate's check and copy, in a child: PID 1 never loads OpenSSL
# (ssl, hashlib), some 4 MB of it.
APPLY_CERTIFICATE = ["python3", "-I", "-m", "flaskbox", "tls-apply"]


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the servers and helpers start with."""
    env = {name: value for name, value in environ.items()
           # uWSGI would read UWSGI_* variables as options of its own, before
           # its ini: the record carries them, and the rendered ini has them.
           if not name.startswith("UWSGI_")}
    # The debugger must never be reachable in production (Flask before 2.3
    # turned it on for FLASK_ENV=development); FLASK_ENV=production is the
    # app's to read, as tutorials' configs do (names.py warns of the rest).
    env.pop("FLASK_DEBUG", None)
    if env.get("FLASK_ENV", "production") != "production":
        del env["FLASK_ENV"]
    return env


class Arbiter:
    def __init__(self, system, settings: Record, environ: Mapping[str, str], relay=None,
                 conf_dir: Path = CONF_DIR):
        self.loop = Loop(system)
        self.settings, self.conf_dir = settings, conf_dir
        self.runtime = Runtime(settings["RUNTIME_DIR"])
        self.server_env = server_env(environ)
        self.generations: list[Generation] = []
        self.current: Generation | None = None
        # The last generation's number. Numbers only go up: a generation
        # killed at its start removes its folder (g<N>) when it is reaped,
        # which may be after the next one has started.
        self.numbered = 0
        # An app whose import left threads: loaded in each worker (generation.py).
        self.lazy_apps = False
        self.nginx = Nginx(self)
        self.ending: Stop | Abort | None = None
        self.helpers = Helpers(self, relay)
        self.reload = Reload(self)
        # A HUP that came during a reload: one more reload once it ends.
        self.hup_pending = False
        self._metrics_mark = None  # the metrics server's mark, awaited before nginx starts
        self.serving = False
        self.exit_code: int | None = None
        self._finishing = False
        self._pool_served = False

    @property
    def stopping(self) -> bool:
        """A stop, an abort or the exit under way: nothing new starts."""
        return self.ending is not None or self._finishing

    def run(self) -> int:
        self.start()
        while self.exit_code is None:
            self.loop.turn(self.on_signal)
        return self.exit_code

    # --- the start -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.loop.system.unwatched:
            warn(f"no inotify instance for the arbiter ({self.loop.system.unwatched}: fs.inotify."
                 "max_user_instances, counted per user on the whole host): it looks for the marks it waits "
                 f"for every {DEGRADED_WAIT * 1000:.0f} ms instead")
        self.runtime.draining.unlink(missing_ok=True)
        shutil.rmtree(self.runtime.uwsgi_dir, ignore_errors=True)
        try:
            self.current = self.new_generation()
            self.current.start(self._first_ready, self._first_failed)
        except OSError as exc:
            error(f"cannot start uWSGI in {self.runtime.dir} ({exc.strerror or exc}); not serving")
            return self.finish(FAILED)
        self.started(self.current)
        self.helpers.start("start")

    def _first_failed(self, generation: Generation, status: int) -> None:
        # A broken app is the user's to fix: said so, and not served.
        said = generation.why(status)
        error(f"{said}; not serving" if status in (IMPORT_FAILED, NOT_AN_APP, IMPORT_TIMED_OUT) else said)
        self.finish(status)

    def _first_ready(self, generation: Generation) -> None:
        def judged(accepted: bool) -> None:
            if self.stopping or not generation.running:
                return
            if not accepted:
                error("nginx rejected the static location for the app's static folder (message above)")
                self.loop.signal([generation.master], signal.SIGKILL)
                return self.finish(BAD_INPUT)
            try:
                generation.serve(self.serving_master_died)
            except OSError as exc:
                error(f"cannot point nginx at the app in {self.runtime.dir} ({exc.strerror}; a full disk?)")
                self.loop.signal([generation.master], signal.SIGKILL)
                return self.finish(FAILED)
            self._pool_served = True
            self._start_nginx()

        try:
            self.nginx.install_app(generation.described(), judged)
        except OSError as exc:
            error(f"cannot write nginx's static location in {self.runtime.dir} ({exc.strerror}; "
                  "a full disk?)")
            self.loop.signal([generation.master], signal.SIGKILL)
            self.finish(FAILED)

    def _metrics_ready(self) -> bool:
        return self.helpers.metrics is None or self.runtime.metrics_ready.exists()

    def _start_nginx(self) -> None:
        """Once the pool serves and the metrics server (if any) listens:
        its mark, which the loop waits for."""
        if self.stopping or not self._pool_served or self.nginx.child:
            return
        if not self._metrics_ready():
            if self._metrics_mark is None:
                try:
                    self._metrics_mark = self.loop.watch(self.runtime.metrics_ready, self._start_nginx)
                except OSError as exc:
                    error(f"cannot watch {self.runtime.metrics_dir} ({exc.strerror or exc}); not serving")
                    self.loop.signal([self.current.master], signal.SIGKILL)
                    return self.finish(FAILED)
                self._start_nginx()  # written before the watch began
            return
        if self._metrics_mark is not None:
            self._metrics_mark.cancel()
        try:
            self.nginx.start(self._listening, self._nginx_ended)
        except OSError as exc:
            error(f"cannot start nginx ({exc.strerror or exc}); not serving")
            self.loop.signal([self.current.master], signal.SIGKILL)
            self.finish(FAILED)

    def _listening(self) -> None:
        self.helpers.start("serving")
        self.serving = True
        info(f"serving {self.settings['APP_MODULE']} on port {self.settings['PORT']} "
             f"(nginx {self.nginx.child.pid}, uWSGI {self.current.master.pid})")

    def helper_ended(self, helper: Helper, child: Child) -> bool:
        """Whether a helper that ended starts again: not a metrics server
        that never listened, which stops the start, as a bad PORT would."""
        if helper is self.helpers.metrics and not self.nginx.child and not self._metrics_ready():
            error(f"the metrics server on METRICS_PORT={self.settings['METRICS_PORT']} did not start (see "
                  "above); not serving")
            self.loop.signal([generation.master for generation in self.running_generations()], signal.SIGKILL)
            self.finish(FAILED)
            return False
        return True

    # --- signals ---------------------------------------------------------------------------------
    def on_signal(self, number: int) -> None:
        if number in STOP_SIGNALS:
            self.stop(number)
        elif number == signal.SIGHUP:
            self.hangup()

    def stop(self, number: int) -> None:
        if self.stopping:
            return  # one stop at a time: repeated signals change nothing
        if self.nginx.child is None:
            # Still importing the app: nothing is served yet, and uWSGI acts
            # on SIGTERM only once its master loop runs. 128 + the signal, as
            # a stop during the entry-point's part of the start.
            info("stopping before the app was ready")
            self.loop.signal([generation.master for generation in self.running_generations()], signal.SIGKILL)
            return self.finish(SIGNALLED + number)
        self.ending = Stop(self)
        self.ending.begin()

    def hangup(self) -> None:
        if self.stopping:
            return
        if not self.serving:
            info("SIGHUP while starting: nothing to reload yet, ignored")
        elif self.reload.under_way:
            # It waits for this reload to end, and is one more reload then
            # (two at once would race for one folder); more HUPs meanwhile
            # are that same one.
            if not self.hup_pending:
                info("SIGHUP during a reload: another reload follows this one")
                self.hup_pending = True
        else:
            self.reload.begin()

    def reload_ended(self) -> None:
        """A HUP that waited during the reload has its turn."""
        if self.hup_pending:
            self.hup_pending = False
            self.hangup()

    # --- what the reload asks --------------------------------------------------------------------
    def apply_certificate(self, then: Callable[[], None]) -> None:
        """TLS_CERT and TLS_KEY in use from the next handshake, if they
        changed and pass the check (certificates.apply, in a child, which
        says its verdict in the log); then(), once it has ended."""
        if not self.settings["TLS_CERT"]:
            return then()
        try:
            self.loop.spawn("the certificate's check", APPLY_CERTIFICATE, lambda child: then(),
                            env=self.server_env)
        except OSError as exc:
            error(f"TLS: cannot run the certificate's check ({exc.strerror or exc}); still serving the "
                  "certificate loaded before")
            then()

    def room_for_a_pool(self) -> bool:
        """Whether one more pool fits under the pids limit now, where a
        generation still retires."""
        if not [generation for generation in self.running_generations() if generation is not self.current]:
            return True
        system = self.loop.system
        free = system.pids_free()
        if free is None:
            return True
        pool = int(self.settings.derived["POOL_PIDS"])
        # The serving pool serves from its first worker on: the workers and
        # threads it has yet to start are taken from what is free now too.
        master = self.current.master
        present = system.tasks([master.pid, *system.children(master.pid)]) if master.running else pool
        return free >= pool + max(0, pool - present)

    # --- the generations: the arbiter's own state ----------------------------------------------
    def new_generation(self) -> Generation:
        """The next generation, its folder made (OSError: a full disk, say).
        Numbers only go up, spent even when it does not start."""
        self.numbered += 1
        generation = Generation(self.numbered, self)
        generation.make_folder()
        return generation

    def started(self, generation: Generation) -> None:
        """Its master runs: the arbiter follows it until it is gone."""
        self.generations.append(generation)

    def now_serving(self, generation: Generation) -> Generation:
        """It serves every new request (its `current` link is in place);
        the one it replaces, to retire."""
        old, self.current = self.current, generation
        return old

    def retired(self, generation: Generation) -> None:
        self.running_generations()  # it is gone from the list
        self.reload.room_made()

    # --- deaths ----------------------------------------------------------------------------------
    def serving_master_died(self, generation: Generation, child: Child) -> None:
        self.reload.abandoned()
        self._abort("uWSGI's master", child)

    def _nginx_ended(self, child: Child) -> None:
        if self.ending is not None:
            return self.ending.ended(child)  # the stop's or the abort's drain
        if self._finishing:
            return
        if self.nginx.listening:
            self.reload.abandoned()
            return self._abort("nginx's master", child)
        # A port taken since the settings were checked.
        self.ending = Abort(self, "nginx's master", child)
        self.ending.not_started()

    def _abort(self, what: str, child: Child) -> None:
        if self.stopping:
            return
        self.ending = Abort(self, what, child)
        self.ending.begin()

    # --- the processes ---------------------------------------------------------------------------
    def running_generations(self) -> list[Generation]:
        """Every generation whose master still runs (the others are forgotten)."""
        self.generations = [generation for generation in self.generations if generation.running]
        return list(self.generations)

    def orphans(self, prefix: str, ended: Callable[[Child], None] = lambda child: None) -> list[Child]:
        """The processes PID 1 was handed whose command line starts with
        `prefix` (the workers a dead master left), adopted to be waited for:
        ended(child) as each ends."""
        system = self.loop.system
        found = []
        for pid in system.children(system.pid):
            if pid not in self.loop.children and system.command(pid).startswith(prefix):
                found.append(self.loop.adopt(prefix, pid, ended))
        return found

    # --- the end ---------------------------------------------------------------------------------
    def finish(self, code: int, by: float | None = None) -> None:
        """The exit code is known: the log relay gets the last lines (until
        `by` at the latest), then the loop ends."""
        if self._finishing:
            return
        self._finishing = True
        self.helpers.last_lines(lambda: self._exit(code), by)

    def _exit(self, code: int) -> None:
        self.exit_code = code
        self.loop.done = True
