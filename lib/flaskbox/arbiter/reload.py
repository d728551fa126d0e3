"""SIGHUP: a reload in place, never a stop. What is reloaded: the
certificate files (if they changed), the app's code, and nginx's
configuration (if a drop-in or the static folder changed); not the
settings, which need a restart.

A reload is steps the loop takes, each once the one before has ended:

    the certificate applied (in a child: PID 1 never loads OpenSSL); the
    app's code as the next generation, started beside the serving one (the
    app is loaded in the master before the fork, so replacing workers one
    by one would fork the old code again); once a
    worker accepts, its static location judged and installed, then it
    serves every new request and the old generation retires; last, nginx's
    configuration, if it changed.

Code that no longer loads is said, and the running code stays. A SIGHUP that
comes meanwhile waits for this one to end (the arbiter's hup_pending): two
at once would race for the same generation."""

from __future__ import annotations

from ..layout import IMPORT_FAILED
from ..log import error, info
from ..userapp.importing import where
from .generation import STARTING, Generation

# Seconds before the first "still loading" line of a slow import, and
# between the next ones.
NOTE_FIRST, NOTE_EVERY = 10, 30


class Reload:
    def __init__(self, arbiter):
        self.arbiter, self.loop = arbiter, arbiter.loop
        self.settings = arbiter.settings
        self.starting: Generation | None = None
        # A reload that waits for room under the pids limit: the pool of an
        # earlier one still finishes its requests.
        self.waiting = False
        self.under_way = False
        self._note = None

    def begin(self) -> None:
        self.under_way = True
        info("SIGHUP: reloading in place (the app's code, nginx's configuration and certificate if they "
             "changed; settings need a restart)")
        self.arbiter.apply_certificate(self._certificate_applied)

    def _certificate_applied(self) -> None:
        if self.arbiter.stopping:
            self.under_way = False
            return
        if self.settings.derived["RELOAD_ROOM"] != "1":
            error("SIGHUP: the pids limit leaves no room for the new code's pool beside the running one; "
                  "still serving the code loaded before (restart the container, or raise the limit)")
        elif not self.arbiter.room_for_a_pool():
            # RELOAD_ROOM counted two pools; the pool of an earlier reload
            # still finishing its requests is a third. Cutting them would end
            # their downloads: the new code waits for that pool to end.
            self.waiting = True
            info(f"SIGHUP: the code of an earlier reload still finishes its requests (RELOAD_GRACE "
                 f"{self.settings['RELOAD_GRACE']}s) and the pids limit has no room for a third pool: the "
                 "new code is loaded once that ends")
        else:
            return self._load()
        self._done()

    def room_made(self) -> None:
        """A retirement ended: the reload that waited for room goes on."""
        if self.waiting and not self.under_way and not self.arbiter.stopping:
            self.waiting = False
            self.under_way = True
            self._load()

    def _load(self) -> None:
        try:
            generation = self.arbiter.new_generation()
        except OSError as exc:
            error(f"SIGHUP: cannot make the new code's folder in {self.arbiter.runtime.dir} ({exc.strerror}; "
                  "a full disk?); still serving the code loaded before")
            return self._done()
        try:
            generation.start(self._ready, self._failed)
        except OSError as exc:
            error(f"SIGHUP: cannot start uWSGI ({exc.strerror or exc}); still serving the code loaded before")
            return self._done()
        self.starting = generation
        self.arbiter.started(generation)
        self._note = self.loop.after(NOTE_FIRST, self._still_loading)

    def _still_loading(self) -> None:
        """Every NOTE_EVERY seconds while the new code loads: how long, where
        its import waits now (its master's, or a worker's with lazy-apps),
        and that the code loaded before serves meanwhile."""
        if self.starting is not None and self.starting.state == STARTING:
            generation = self.starting
            seconds = round(self.loop.now() - generation.started)
            try:
                place = where(generation.files.import_progress.read_text(errors="replace"))[0]
            except OSError:
                place = ""  # its import has ended, and its workers start
            doing = (f"its import waits at {place}" if place else
                     "its workers start" if generation.files.app.exists() else "its import runs")
            info(f"SIGHUP: the new code has been loading for {seconds} s"
                 f"{' in each worker (lazy-apps)' if generation.lazy else ''}: {doing}; the code loaded "
                 "before serves meanwhile")
            self._note = self.loop.after(NOTE_EVERY, self._still_loading)

    def _failed(self, generation: Generation, status: int) -> None:
        why = generation.why(status)
        if status == IMPORT_FAILED:
            why = f"APP_MODULE='{self.settings['APP_MODULE']}' no longer imports (see above)"
        self._refused(why)

    def _ready(self, generation: Generation) -> None:
        def judged(accepted: bool) -> None:
            if generation is not self.starting or self.arbiter.stopping:
                return  # ended meanwhile, and said so (_failed), or given up by a stop
            if not accepted:
                return self._refused("nginx rejected its configuration with the static location of the app's "
                                     "new code (message above: the static folder, or a drop-in in "
                                     "/app/nginx.d)")
            try:
                generation.serve(self.arbiter.serving_master_died)
            except OSError as exc:
                self.arbiter.nginx.put_back_app()
                return self._refused(f"cannot point nginx at the new code in {self.arbiter.runtime.dir} "
                                     f"({exc.strerror}; a full disk?)")
            old, self.starting = self.arbiter.now_serving(generation), None
            old.retire(self.arbiter.retired)
            info(f"SIGHUP: uWSGI serves the app's new code (generation {generation.number}); the old code "
                 f"finishes what it holds (RELOAD_GRACE {self.settings['RELOAD_GRACE']}s)")
            self._done()

        try:
            self.arbiter.nginx.install_app(generation.described(), judged)
        except OSError as exc:
            self._refused(f"cannot write nginx's static location for the new code in "
                          f"{self.arbiter.runtime.dir} ({exc.strerror}; a full disk?)")

    def _refused(self, why: str) -> None:
        error(f"SIGHUP: {why}; still serving the code loaded before")
        if self.starting is not None and self.starting.running:
            # Its end makes room for a pool, as a retirement's does.
            self.starting.abandon(lambda generation, child: self.arbiter.retired(generation))
        self.starting = None
        self._done()

    def abandoned(self) -> None:
        """A serving process (nginx's master, the serving uWSGI master) died
        while the new code loaded: the container stops, and the new code
        with it."""
        if self.starting is not None:
            error("SIGHUP: a process serving the code loaded before (nginx's or uWSGI's master) ended while "
                  "the new code loaded; the reload is abandoned")
            self.starting.abandon()
            self.starting = None

    def _done(self) -> None:
        if self._note is not None:
            self._note.cancel()
        self.arbiter.nginx.apply_config()
        self.under_way = False
        self.arbiter.reload_ended()
