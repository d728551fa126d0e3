"""How APP_MODULE's import is watched, in both modes (wsgi.py in
production, debug.py in debug mode): the two mistakes that make an import
never end.

- A server started at import: `app.run()` left outside `if __name__ ==
  "__main__":`, as tutorials write it. uWSGI's master would run the
  development server inside the import, and nothing would ever be served.
  The call is ignored, as `flask run` ignores it, and the log names its file
  and line (ServerCalls).
- An import that waits for good (a database that is not there, a lock, a
  server Flask's run() is not: waitress.serve, socketio.run on gevent):
  past IMPORT_TIMEOUT every thread's stack is written down, and the start
  ends (production: Deadline; the arbiter says where it waited:
  say_import_stacks), or, in debug mode, where a developer
  may be starting the database, the stacks are shown and the wait goes on
  (Reminder).
"""

from __future__ import annotations

import faulthandler
import os
import re
import sys
import threading
from pathlib import Path

from ..layout import APP_DIR, GEVENT
from ..log import error, warn
from ..record import Record
from ..start import body
from . import sqlite_journal

# faulthandler's line for a frame: `  File "/app/app.py", line 7 in connect`.
FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<function>\S+)')
# Functions that serve requests for good: a server started at import.
SERVING = ("serve_forever", "run_simple", "serve", "run_forever")
# Seconds between two writes of a slow import's stacks (Deadline's
# progress): the arbiter's note (at 10 s, then every 30) finds one at
# most this old.
PROGRESS_EVERY = 4


class ServerCalls:
    """While the app imports, Flask.run (app.run(), and what calls it:
    Flask-SocketIO's socketio.run in threading mode) returns at once and
    says where the app's code called it (if `says`: with lazy-apps, only
    the generation's first worker to load the app does). Every Flask version
    has the method, so an app's old pin is covered too."""

    def __init__(self, says: bool = True):
        self.says = says

    def __enter__(self):
        self.restore = None
        try:
            from flask import Flask
        except ImportError:  # a bare WSGI app, in an image without Flask
            return self
        original = Flask.run

        def ignored_run(app, *args, **kwargs):
            if self.says:
                warn(f"the app's import called app.run() ({_callers_place()}): ignored, as `flask run` "
                     "ignores it; the image serves the app. Put the call under `if __name__ == "
                     "\"__main__\":` to keep it for `python app.py`")

        Flask.run = ignored_run
        self.restore = lambda: setattr(Flask, "run", original)
        return self

    def __exit__(self, *exc):
        if self.restore is not None:
            self.restore()
        return False


def _callers_place(app_dir: str = str(APP_DIR)) -> str:
    """The innermost frame in the app's own code that led here (socketio.run
    calls app.run for the app), else the direct caller."""
    frame = sys._getframe(2)
    caller = frame
    while frame is not None and not frame.f_code.co_filename.startswith(app_dir + "/"):
        frame = frame.f_back
    frame = frame or caller
    return f"{frame.f_code.co_filename}, line {frame.f_lineno}, in {frame.f_code.co_name}"


class Deadline:
    """Production: past `seconds` (0: never), every thread's stack goes to
    `stacks` and the process exits (faulthandler's own thread does both, so
    an import that holds Python's lock in C code is stopped too). The
    supervisor finds the file and says where the import waited.

    Meanwhile, every PROGRESS_EVERY seconds, the stacks go to `progress`
    too (replaced whole), for the supervisor to say where a slow import
    waits while it waits (a reload's new code: arbiter/reload.py). Started
    before the census of the import's threads, and ended after it: not one
    of the app's."""

    def __init__(self, seconds: int, stacks: Path, progress: Path | None = None):
        self.seconds, self.stacks, self.file = seconds, stacks, None
        self.progress, self.wake = progress, None

    def __enter__(self):
        if self.seconds > 0:
            try:
                self.file = self.stacks.open("w")
            except OSError:
                self.file = sys.stderr  # a full disk: the stacks still reach the log
            faulthandler.dump_traceback_later(self.seconds, exit=True, file=self.file)
        if self.progress is not None:
            # An OS thread whatever gevent has patched: a greenlet would run
            # only when its hub does, never while the master imports.
            start, select, lock = originals()
            self.wake = os.pipe()
            self.ended = lock()
            self.ended.acquire()
            start(self._report, (select,))
        return self

    def _report(self, select) -> None:
        try:
            while not select([self.wake[0]], [], [], PROGRESS_EVERY)[0]:
                # With lazy-apps each worker writes: its own file first.
                new = self.progress.with_name(f"{self.progress.name}.{os.getpid()}")
                with new.open("w") as file:
                    faulthandler.dump_traceback(file, all_threads=True)
                new.replace(self.progress)
        except OSError:
            pass  # a full disk: the note goes without where
        finally:
            self.ended.release()

    def __exit__(self, *exc):
        if self.wake is not None:
            os.write(self.wake[1], b"x")
            self.ended.acquire(timeout=2)  # gone before the workers are forked
            for fd in self.wake:
                os.close(fd)
        if self.file is not None:
            faulthandler.cancel_dump_traceback_later()
            if self.file is not sys.stderr:
                self.file.close()
                self.stacks.unlink(missing_ok=True)
        if self.progress is not None:
            self.progress.unlink(missing_ok=True)
        return False


def originals():
    """_thread's start_new_thread and allocate_lock, and select's select, as
    the OS has them, under gevent's patches too (with WORKER_CLASS=gevent
    the master patches before it imports the app)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return (monkey.get_original("_thread", "start_new_thread"), monkey.get_original("select", "select"),
                monkey.get_original("_thread", "allocate_lock"))
    import _thread
    import select
    return _thread.start_new_thread, select.select, _thread.allocate_lock


class Reminder:
    """Debug mode: past `seconds`, say that the import still runs and show
    where every thread is, once; the wait goes on."""

    def __init__(self, seconds: int, what: str):
        self.seconds, self.what, self.timer = seconds, what, None

    def _remind(self) -> None:
        error(f"{self.what} has been importing for {self.seconds} s (IMPORT_TIMEOUT) and goes on waiting; "
              "each thread's stack follows, most recent call first")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)

    def __enter__(self):
        if self.seconds > 0:
            self.timer = threading.Timer(self.seconds, self._remind)
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()
        return False


def app_mistakes(app, settings: Record, processes: int = 1) -> list[str]:
    """What the loaded app's own configuration gets wrong for production:
    said at start, so that the first request does not find out."""
    config = getattr(app, "config", None)
    if not isinstance(config, dict):
        return []  # not a Flask app
    found = []
    if getattr(app, "debug", False):
        found.append("the app turns Flask's debug mode on (DEBUG = True, or app.debug): in production the "
                     "debugger stays off, and an exception the app passes on is answered 500 by the image; "
                     "debug mode is `-d debug`")
    limit = config.get("MAX_CONTENT_LENGTH")
    if limit is not None and max_content_length(app) is None:
        found.append(f"the app's MAX_CONTENT_LENGTH is {limit!r}, not a number of bytes: Flask fails each "
                     "request with a body on it; write a number (15 * 1024 * 1024), or None for no limit")
    found += body.mistakes(settings, max_content_length(app))
    if "socketio" in getattr(app, "extensions", {}) and settings["WORKER_CLASS"] != GEVENT and processes > 1 \
            and not settings["STICKY_CLIENTS"]:
        # Its session lives in the process that opened it, and any free process takes the next poll.
        found.append(f"the app uses Flask-SocketIO, whose sessions live in the process that opened "
                     f"them, and the sync workers' {processes} processes take a client's requests in turn: "
                     "its polls then fail (\"Invalid session\"); set WORKER_CLASS=gevent "
                     "(docs/streaming.md), or STICKY_CLIENTS=1")
    return found + sqlite_journal.warnings(app, processes)


def max_content_length(app) -> int | None:
    """Flask's MAX_CONTENT_LENGTH as the app sets it, in bytes (nginx's body
    limit may follow it: start/body.py): None where it sets none (Flask's
    default: no limit), or one Flask cannot compare a length with."""
    config = getattr(app, "config", None)
    value = config.get("MAX_CONTENT_LENGTH") if isinstance(config, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        return None
    return int(value)


def where(stacks: str, app_dir: str = str(APP_DIR)) -> tuple[str, bool]:
    """From faulthandler's dump: where the import waits (the innermost
    frame in the app's own code, else the innermost of all, of the thread
    deepest in the app's code), and whether a server's loop is on a stack."""
    best, best_depth, serving = "", -1, False
    for thread in re.split(r"\n(?=\S)", stacks):
        frames = [m for m in (FRAME.match(line) for line in thread.splitlines()) if m]
        if not frames:
            continue
        serving = serving or any(m["function"] in SERVING for m in frames)
        ours = [m for m in frames if m["file"].startswith(app_dir + "/")]
        pick = (ours or frames)[0]  # most recent call first
        depth = len(ours)
        if depth > best_depth:
            best, best_depth = f"{pick['file']}, line {pick['line']}, in {pick['function']}", depth
    return best, serving


def say_import_stacks(path: Path, app_module: str, seconds: int) -> None:
    """What the arbiter says when the import ran past IMPORT_TIMEOUT: one
    line naming where it waited, then every thread's stack."""
    try:
        stacks = path.read_text(errors="replace")
    except OSError:
        stacks = ""
    place, serving = where(stacks)
    advice = ("a server runs in its stack, started at import (waitress.serve, socketio.run, "
              "serve_forever): put that call under `if __name__ == \"__main__\":`"
              if serving else "find what it waits for (a database, a service, a lock), or raise "
                              "IMPORT_TIMEOUT if the import is only slow")
    at = f" it waits at {place};" if place else ""
    error(f"APP_MODULE='{app_module}' did not import within IMPORT_TIMEOUT ({seconds} s):{at} {advice}. "
          "Each thread's stack, most recent call first:")
    # faulthandler's first line ("Timeout (0:02:00)!") says what the line above says.
    body = stacks.partition("\n")[2] if stacks.startswith("Timeout") else stacks
    sys.stderr.write(body or "(no stack was written)\n")
    sys.stderr.flush()
