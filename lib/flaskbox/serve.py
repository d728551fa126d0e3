"""The WSGI app uWSGI runs in production: the user's app (APP_MODULE, found
as `flask run` finds it: discover.py) plus what the HTTP hop from nginx
needs. At load it writes nginx's static location from the app's own static
folder (render.static_location). Per request it:

- sets REMOTE_ADDR, REMOTE_PORT and SERVER_PORT from X-Flaskbox-Peer, the
  header nginx always sets (a client's copy is replaced), since uWSGI sees
  only a unix socket;
- answers the health check, GET /-/healthy exactly, without the app;
- skips a request whose client has already gone (nginx closed the
  connection while it waited for a worker), instead of running it for
  nobody;
- frames a response without a Content-Length as chunked, so that nginx can
  tell a complete stream from one cut short (a killed worker, an exception
  mid-stream) and the client sees the difference;
- with more than one thread per process, enforces REQUEST_TIMEOUT per
  request, which uWSGI 2.0's per-process harakiri timer does not.

Imported in the uWSGI master (the app is loaded before the fork), it also
watches the workers being forked: a pool whose workers die before they ever
accept a request stops uWSGI, and so the container (SpawnGuard).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from pathlib import Path

from . import discover, render

try:  # only inside uWSGI
    import uwsgi
except ImportError:  # unit tests
    uwsgi = None

HEALTH_BODY = b"ok\n"
# Statuses and methods that never carry a body, so are never framed.
NO_BODY = {204, 304}
TERMINATOR = b"0\r\n\r\n"


def log(message: str) -> None:
    print(f"flaskbox: {message}", file=sys.stderr, flush=True)


def health(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HEALTH_BODY)))])
    return [HEALTH_BODY]


def client_gone() -> bool:
    """True when nginx has already closed this request's connection: its
    client gave up (or nginx's timeout passed) while it waited in the queue."""
    if uwsgi is None:
        return False
    poller = select.poll()
    poller.register(uwsgi.connection_fd(), select.POLLRDHUP)
    return bool(poller.poll(0))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def needs_framing(status: str, headers, method: str) -> bool:
    """A response with a body but no Content-Length (a stream, a generator):
    nginx can tell its end from a cut only if it is chunked."""
    for name, _ in headers:
        lowered = name.lower()
        if lowered == "content-length" or lowered == "transfer-encoding":
            return False
    code = int(status[:3])
    return code >= 200 and code not in NO_BODY and method != "HEAD"


def framed(result, state: list):
    """The body of a response, chunked if state[0] (set by start_response,
    which may run at the first iteration) says so."""
    try:
        for data in result:
            if not state[0]:
                yield data
            elif data:
                yield chunk(data)
        # Only a body that ended normally gets its last chunk; an exception
        # above leaves it open, and nginx reports the cut to the client.
        if state[0]:
            yield TERMINATOR
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


class Watchdog:
    """REQUEST_TIMEOUT per request for threaded workers: a request running
    past it takes its worker down (as harakiri would), which frees the stuck
    thread and answers its client with a 5xx; the worker's other requests
    are cut too, so the log says how many."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.running: dict[int, tuple[float, str]] = {}
        self.pid = None
        self.lock = threading.Lock()

    def begin(self, environ) -> None:
        if self.pid != os.getpid():
            # The first request in a new worker (a fork of the master).
            with self.lock:
                if self.pid != os.getpid():
                    self.pid = os.getpid()
                    self.running.clear()
                    threading.Thread(target=self._watch, name="flaskbox-watchdog", daemon=True).start()
        what = f"{environ.get('REQUEST_METHOD')} {environ.get('REQUEST_URI')}"
        self.running[threading.get_ident()] = (time.monotonic(), what)

    def end(self) -> None:
        self.running.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            for started, what in list(self.running.values()):
                if now - started > self.timeout:
                    others = len(self.running) - 1
                    log(f"{what} ran past REQUEST_TIMEOUT ({self.timeout:g} s): killing worker pid "
                        f"{os.getpid()} ({others} other request(s) in it are cut)")
                    os.kill(os.getpid(), signal.SIGKILL)


class SpawnGuard:
    """Runs in the uWSGI master after every fork of a worker (an
    os.register_at_fork hook, which py-call-uwsgi-fork-hooks calls). Each
    worker that reaches its accept loop touches `marker` (app.ini's
    hook-accepting). If the master forks more than `limit` workers in a row
    while none of them gets there (a crash at fork, an os.abort() in an
    at-fork hook, an extension that segfaults in a new process), the pool
    cannot stay up: uWSGI would respawn them forever, sleeping 2 s per round,
    and the container would look alive. Exit instead, so that a restart
    policy or an orchestrator sees it. Workers that die after accepting
    (recycling, harakiri, a crash now and then) reset the count."""

    def __init__(self, marker: str, limit: int):
        self.marker = marker
        self.limit = limit
        self.forks = 0
        self.seen: int | None = None

    def stamp(self) -> int | None:
        try:
            return os.stat(self.marker).st_mtime_ns
        except FileNotFoundError:
            return None

    def after_fork(self) -> None:
        stamp = self.stamp()
        if stamp != self.seen:
            self.seen, self.forks = stamp, 0
        self.forks += 1
        if self.forks > self.limit:
            log(f"uWSGI forked {self.forks} workers in a row and none of them started (the reason is "
                "in the log above: a crash at fork, an at-fork hook, an extension module); giving up, "
                "so that a restart policy or orchestrator replaces this container")
            os._exit(3)


class Serve:
    def __init__(self, app, timeout: float, threads: int):
        self.app = app
        self.watchdog = Watchdog(timeout) if threads > 1 else None

    def __call__(self, environ, start_response):
        peer = environ.pop("HTTP_X_FLASKBOX_PEER", None)
        if peer:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"] = peer.split(" ", 2)
        if environ.get("REQUEST_URI") == "/-/healthy":
            return health(environ, start_response)
        if client_gone():
            log(f"skipped {environ.get('REQUEST_METHOD')} {environ.get('REQUEST_URI')}: "
                "its client left while it waited for a worker")
            start_response("499 Client Closed Request", [("Content-Length", "0")])
            return []
        # state[0]: None until start_response runs, then whether to chunk.
        state = [None]
        method = environ["REQUEST_METHOD"]

        def framing_start_response(status, headers, exc_info=None):
            state[0] = needs_framing(status, headers, method)
            if not state[0]:
                return start_response(status, headers, exc_info)
            write = start_response(status, [*headers, ("Transfer-Encoding", "chunked")], exc_info)
            return lambda data: write(chunk(data)) if data else None

        if self.watchdog is None:
            result = self.app(environ, framing_start_response)
            if state[0] is False:
                return result  # the common case: a Content-Length, nothing to add
            return framed(result, state)
        self.watchdog.begin(environ)
        try:
            return self._watched(framed(self.app(environ, framing_start_response), state))
        except BaseException:
            self.watchdog.end()
            raise

    def _watched(self, body):
        try:
            yield from body
        finally:
            body.close()
            self.watchdog.end()


def uwsgi_option(name: str, default: str) -> str:
    """An option as uWSGI ended up with it (the last of repeated ones)."""
    value = uwsgi.opt.get(name, default)
    if isinstance(value, list):
        value = value[-1]
    return value.decode() if isinstance(value, bytes) else str(value)


def load_app() -> discover.Found:
    """APP_MODULE's app. Not an app (a factory named without a call, a
    module with none): the message says what to write instead, and uWSGI
    exits with code 2, so the container does, before anything is served."""
    try:
        return discover.load(os.environ["APP_MODULE"])
    except discover.AppError as exc:
        print(f"flaskbox: error: {exc}", file=sys.stderr, flush=True)
        os._exit(2)


def write_static_location(found: discover.Found) -> None:
    """nginx's static location, now that the app can say where its static
    files are; the entry-point checks it with `nginx -t` before nginx starts."""
    path = Path(os.environ["RUNTIME_DIR"]) / "nginx" / "static.conf"
    path.write_text(render.static_location(dict(os.environ), found.describe()))


def from_environment():
    found = load_app()
    write_static_location(found)
    # UWSGI_* variables are gone by now (the entry-point removes them so
    # that uWSGI reads the rendered ini only); ask uWSGI for its threads.
    return Serve(found.app, float(os.environ["REQUEST_TIMEOUT"]), int(uwsgi_option("threads", "1")))


def guard_the_pool() -> None:
    """In the master only (where the app is loaded, before any fork): three
    rounds of every worker failing is a pool that cannot stay up."""
    if uwsgi is None or uwsgi.worker_id() != 0:
        return
    processes = int(uwsgi_option("processes", "1"))
    guard = SpawnGuard(os.path.join(os.environ["RUNTIME_DIR"], "uwsgi.accepting"), 3 * processes)
    os.register_at_fork(after_in_parent=guard.after_fork)


if uwsgi is not None:
    application = from_environment()
    guard_the_pool()
