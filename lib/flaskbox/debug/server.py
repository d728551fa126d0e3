"""flaskbox's debug server (python3 -m flaskbox.debug.server): the Flask development
server with the interactive debugger and a code reloader. entry-point.sh runs
it in debug mode, once the settings are resolved into the record (record.py):

    APP_MODULE      the app, found as in production (discover.py)
    PORT            port to listen on (all interfaces: the container's port)
    DEBUG_RELOADER  inotify (file events) or poll (stat every 0.5 s)

It is `flask run --debug` with these differences, each for a reason:
- The reloader is chosen by DEBUG_RELOADER. Docker Desktop forwards file
  events across bind mounts unreliably; polling always sees a save.
- The inotify reloader reloads only when a file changed, whatever Werkzeug
  the app pins (see CHANGED): not when something merely reads one.
- The polling reloader also reloads when a new .py file appears under /app,
  as the inotify one does, so an import saved before its module recovers.
- A save that lands during a restart is not lost (see CatchUp).
- An app that fails to import (a syntax error, a missing module) never stops
  the server, not even at start: the error is printed in the log, shown in the
  browser by the debugger, and the next save reloads.
- SIGHUP (`docker kill -s HUP`) restarts the server process, as a save does,
  instead of ending the container (see on_hangup).
- A server process that crashes (SIGSEGV in a C extension, or in the
  interpreter itself) is named in the log and started again, instead of
  ending the container with no word (see serve_until_stopped).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from functools import partial
from pathlib import Path

from werkzeug import _reloader
from werkzeug.serving import is_running_from_reloader, run_simple

from .. import record
from ..layout import APP_DIR, BAD_INPUT
from ..log import error
from ..request import prefix
from ..userapp import discover, importing, load_failure, refused_writes
from .changes import SKIPPED_DIRS

# Seconds between two scans of the polling reloader: a save is served within
# this plus one restart (about 0.5 s), inside the 2 s a developer waits.
POLL_INTERVAL = 0.5


def app_sources() -> dict[str, int]:
    """path -> mtime (ns) of every .py file under /app."""
    found = {}
    for root, dirs, files in os.walk(APP_DIR):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:
                    continue
    return found


# The sources as they were just before the app was imported (set in main).
SOURCES_AT_LOAD: dict[str, int] = {}


class CatchUp:
    """A save that lands while the server restarts (an editor that formats
    on save writes twice) happens before the new process watches anything,
    and would be lost: the old code would be served until the next save.
    Once watching, compare the sources with what the import read, and reload
    again if they differ. mtimes are compared with mtimes, never with the
    clock, which on Docker Desktop may differ from the host's."""

    def __enter__(self):
        loop = super().__enter__()
        now = app_sources()
        changed = sorted(path for path in now.keys() | SOURCES_AT_LOAD.keys()
                         if now.get(path) != SOURCES_AT_LOAD.get(path))
        if changed:
            self.trigger_reload(changed[0])
        return loop


# The watchdog events that mean a file changed (as Werkzeug 3.0.5 and later
# list them). Older Werkzeug, which apps pin, reloads on any other too:
# watchdog's `opened` (since 2.3) and `closed_no_write` (since 5.0), which
# every read of a watched file makes, the health check's every 10 s included.
CHANGED = frozenset(("modified", "created", "deleted", "moved", "closed"))


def changes_only(dispatch):
    """A watchdog handler's dispatch that passes on only CHANGED events."""
    def dispatch_changes(event) -> None:
        if event.event_type in CHANGED:
            dispatch(event)
    return dispatch_changes


class InotifyReloaderLoop(CatchUp, _reloader.WatchdogReloaderLoop):
    """Werkzeug's watchdog reloader: restarts on file events that change a file."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        handler = self.event_handler
        handler.dispatch = changes_only(handler.dispatch)


class PollingReloaderLoop(CatchUp, _reloader.StatReloaderLoop):
    """Werkzeug's stat reloader, which reloads on changed files only, plus a
    reload when a .py file appears under /app."""

    name = "poll"

    def run_step(self) -> None:
        known = set(self.mtimes)
        super().run_step()
        # The first scan (known is empty) only records what is there. Only
        # /app counts: modules the app imports lazily from the standard
        # library or the venv are new to the list, not new on disk.
        new = sorted(path for path in self.mtimes.keys() - known if path.startswith(f"{APP_DIR}{os.sep}"))
        if known and new:
            self.trigger_reload(new[0])


# DEBUG_RELOADER's values, registered in the table Werkzeug looks names up in.
RELOADERS = {"inotify": "flaskbox-inotify", "poll": "flaskbox-poll"}
_reloader.reloader_loops.update({RELOADERS["inotify"]: InotifyReloaderLoop,
                                 RELOADERS["poll"]: PollingReloaderLoop})


def first_load() -> bool:
    """True the first time the app is loaded in this container (the
    entry-point removes the marker before starting the server)."""
    marker = record.runtime().debug_loaded
    if marker.exists():
        return False
    marker.touch()
    return True


def record_load(error: BaseException | None) -> None:
    """How the last load went, for the health check (health.py): a server
    that answers every request with a traceback is not healthy."""
    target = record.runtime().debug_app
    state = "ok\n"
    if error is not None:
        first_line = (str(error).splitlines() or [""])[0]
        state = f"error {type(error).__name__}: {first_line}\n"
    part = target.with_name(target.name + ".part")
    try:
        part.write_text(state)
        part.replace(target)
    except OSError:
        pass


class DevApp:
    """The WSGI app the server runs: the user's app, or the error that kept it
    from loading. Always this one object, so the debugger PIN (derived from
    the app object's module and class) stays the same whether the code is
    broken or not."""

    def __init__(self, import_path: str, url_prefix: str, import_timeout: int):
        self.app = None
        self.url_prefix = url_prefix
        self.error: BaseException | None = None
        starting = first_load()
        try:
            with importing.Reminder(import_timeout, f"APP_MODULE='{import_path}'"), \
                    importing.ServerCalls(), refused_writes.watch():
                self.app = discover.load(import_path).app
        except discover.AppError as exc:
            if starting:
                # A setting that names no app, found at start: exit 2 as
                # production does (the reloader's parent exits with it).
                error(str(exc))
                os._exit(BAD_INPUT)
            print(f" * {exc}; serving the error until the next save", file=sys.stderr)
            self.error, self.error_traceback = exc, exc.__traceback__
        except (Exception, SystemExit) as exc:
            load_failure.explain(exc, import_path)
            print(f" * {import_path} failed to load; serving the error until the next save", file=sys.stderr)
            self.error = exc
            self.error_traceback = exc.__traceback__
        record_load(self.error)

    def __call__(self, environ, start_response):
        if self.error is not None:
            # The debugger turns this into its traceback page. The original
            # traceback each time: a re-raise would append to it.
            raise self.error.with_traceback(self.error_traceback)
        # URL_PREFIX only: nothing here says which proxy may be believed.
        prefix.apply(environ, self.url_prefix, trust_header=False)
        return self.app(environ, start_response)


def _placeholder(environ, start_response):
    """The reloader's parent process only holds the socket; the child that
    serves loads the real app. Never called."""
    raise RuntimeError("the debug server's parent process does not serve requests")


def reloader_name(setting: str) -> str:
    """Werkzeug's name for the DEBUG_RELOADER setting. inotify needs the
    watchdog package, which an image built FROM this one may have dropped."""
    if setting == "inotify":
        try:
            import watchdog.observers  # noqa: F401
        except ImportError:
            print(" * DEBUG_RELOADER=inotify needs the watchdog package: polling instead", file=sys.stderr)
            return RELOADERS["poll"]
    return RELOADERS[setting]


def on_hangup() -> None:
    """SIGHUP reloads, as in production, and never ends the container. The
    process tini signals is Werkzeug's reloader, which restarts the serving
    process whenever that one exits with code 3 (what a save does). The
    reloader keeps SIGHUP blocked and takes it on a thread of its own, which
    passes it on to the serving process; that one exits with 3. The serving
    process starts with SIGHUP blocked too (the mask is inherited), so a HUP
    that comes while it is still starting waits for its handler instead of
    killing it (measured: a second HUP soon after the first ended the
    container)."""
    if is_running_from_reloader():
        def reload(signum, frame):
            # Ignored on the way out: Python restores the default action
            # (death) of the signals it handles as it shuts down, and a
            # second HUP then ended the process with a code the reloader
            # does not restart on (measured: the container exited 255). The
            # restart serves the newest code anyway.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            print(" * SIGHUP: reloading", file=sys.stderr)
            sys.exit(3)  # in the main thread: Werkzeug's reloader loop ends, and is restarted
        signal.signal(signal.SIGHUP, reload)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    # The entry-point ignores SIGHUP up to the exec; an ignored signal would
    # never reach sigwait, nor the serving process's handler.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    threading.Thread(target=_pass_on_hangups, name="flaskbox-sighup", daemon=True).start()


def _pass_on_hangups() -> None:
    """In the reloader: each SIGHUP to the serving process(es) it runs."""
    pid = os.getpid()
    while True:
        signal.sigwait({signal.SIGHUP})
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            try:
                os.kill(int(child), signal.SIGHUP)
            except OSError:
                pass


# Signals that end a process on a crash (not a stop, nor a kill someone chose).
CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL}
# Seconds before a crashed server process starts again: a crash at every
# start is a line a second, not a busy loop.
CRASH_PAUSE = 1.0


def serve_until_stopped(serve) -> None:
    """serve() (run_simple with the reloader), again each time Werkzeug's
    reloader returns because its server process crashed; it returns the
    child's status, negative for a signal, and would end the container."""
    while True:
        try:
            return serve()  # Ctrl-C: Werkzeug returns
        except SystemExit as end:
            crash = -end.code if isinstance(end.code, int) and end.code < 0 else None
            if is_running_from_reloader() or crash not in CRASHES:
                raise
            error(f"the dev server crashed ({signal.Signals(crash).name}: look for a C extension, or the "
                  f"request that was running); starting it again")
            time.sleep(CRASH_PAUSE)


def steady_pin() -> None:
    """Werkzeug derives the debugger PIN from uuid.getnode(), the machine's
    MAC address; where Python finds none (3.14 in a container), getnode is
    random in each process, and each reload showed a new PIN, which the
    browser then asked for again. In the reloader's parent, before its
    first server process: a PIN from what does not change while the
    container runs (Werkzeug's machine id, the host name, the user), unless
    WERKZEUG_DEBUG_PIN says one."""
    if os.environ.get("WERKZEUG_DEBUG_PIN") or not (uuid.getnode() >> 40) & 1:  # the multicast bit: random
        return
    from werkzeug.debug import get_machine_id

    seed = f"{get_machine_id()!r}|{socket.gethostname()}|{os.getuid()}".encode()
    digits = f"{int(hashlib.sha256(seed).hexdigest(), 16) % 10**9:09d}"
    os.environ["WERKZEUG_DEBUG_PIN"] = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def main() -> None:
    on_hangup()
    settings = record.load()
    import_path = settings["APP_MODULE"]
    reloader = reloader_name(settings["DEBUG_RELOADER"])
    # /app first on sys.path, as `flask run` from /app would have it.
    sys.path.insert(0, str(APP_DIR))
    if is_running_from_reloader():
        SOURCES_AT_LOAD.update(app_sources())
        app = DevApp(import_path, settings["URL_PREFIX"], settings["IMPORT_TIMEOUT"])
    else:
        # Flask's banner, written here: its signature changed across the
        # Flask versions an app may pin.
        print(f" * Serving Flask app '{import_path}'\n * Debug mode: on", file=sys.stderr)
        print(f" * Reloader: {settings['DEBUG_RELOADER']} (DEBUG_RELOADER)", file=sys.stderr)
        steady_pin()
        app = _placeholder
    serve_until_stopped(partial(
        run_simple,
        settings["DEBUG_HOST"],
        settings["PORT"],
        app,
        use_reloader=True,
        use_debugger=True,
        use_evalex=True,
        threaded=True,
        reloader_type=reloader,
        reloader_interval=POLL_INTERVAL,
    ))


if __name__ == "__main__":
    main()
