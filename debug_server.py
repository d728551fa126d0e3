"""flaskbox's debug server: the Flask development server with the interactive
debugger and a code reloader. entry-point.sh runs it in debug mode, with the
settings it has already checked in the environment:

    APP_MODULE      module:callable to serve, relative to /app
    PORT            port to listen on (all interfaces: the container's port)
    DEBUG_RELOADER  inotify (file events) or poll (stat every 0.5 s)

It is `flask run --debug` with three differences, each for a reason:
- The reloader is chosen by DEBUG_RELOADER. Docker Desktop forwards file
  events across bind mounts unreliably; polling always sees a save.
- The polling reloader also reloads when a new .py file appears under /app,
  as the inotify one does, so an import saved before its module recovers.
- An app that fails to import (a syntax error, a missing module) never stops
  the server, not even at start: the error is printed in the log, shown in the
  browser by the debugger, and the next save reloads.
"""

from __future__ import annotations

import os
import sys
import traceback

from flask.cli import ScriptInfo, show_server_banner
from werkzeug import _reloader
from werkzeug.serving import is_running_from_reloader, run_simple

APP_DIR = "/app"
# Seconds between two scans of the polling reloader: a save is served within
# this plus one restart (about 0.5 s), inside the 2 s a developer waits.
POLL_INTERVAL = 0.5


class PollingReloaderLoop(_reloader.StatReloaderLoop):
    """Werkzeug's stat reloader, which reloads on changed files only, plus a
    reload when a .py file appears under /app."""

    name = "poll"

    def run_step(self) -> None:
        known = set(self.mtimes)
        super().run_step()
        # The first scan (known is empty) only records what is there. Only
        # /app counts: modules the app imports lazily from the standard
        # library or the venv are new to the list, not new on disk.
        new = sorted(path for path in self.mtimes.keys() - known if path.startswith(APP_DIR + os.sep))
        if known and new:
            self.trigger_reload(new[0])


# Werkzeug looks reloaders up by name in this table.
RELOADERS = {"inotify": "watchdog", "poll": PollingReloaderLoop.name}
_reloader.reloader_loops[PollingReloaderLoop.name] = PollingReloaderLoop


class DevApp:
    """The WSGI app the server runs: the user's app, or the error that kept it
    from loading. Always this one object, so the debugger PIN (derived from
    the app object's module and class) stays the same whether the code is
    broken or not."""

    def __init__(self, import_path: str):
        self.app = None
        self.error: BaseException | None = None
        try:
            self.app = ScriptInfo(app_import_path=import_path, set_debug_flag=True).load_app()
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            print(f" * {import_path} failed to load; serving the error until the next save", file=sys.stderr)
            self.error = exc
            self.error_traceback = exc.__traceback__

    def __call__(self, environ, start_response):
        if self.error is not None:
            # The debugger turns this into its traceback page. The original
            # traceback each time: a re-raise would append to it.
            raise self.error.with_traceback(self.error_traceback)
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


def main() -> None:
    import_path = os.environ["APP_MODULE"]
    port = int(os.environ["PORT"])
    reloader = reloader_name(os.environ["DEBUG_RELOADER"])
    # /app first on sys.path, as `flask run` from /app would have it.
    sys.path.insert(0, APP_DIR)
    if is_running_from_reloader():
        app = DevApp(import_path)
    else:
        show_server_banner(True, import_path)
        print(f" * Reloader: {os.environ['DEBUG_RELOADER']} (DEBUG_RELOADER)", file=sys.stderr)
        app = _placeholder
    run_simple(
        "0.0.0.0",
        port,
        app,
        use_reloader=True,
        use_debugger=True,
        use_evalex=True,
        threaded=True,
        reloader_type=reloader,
        reloader_interval=POLL_INTERVAL,
    )


if __name__ == "__main__":
    main()
