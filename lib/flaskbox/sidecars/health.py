"""The image's HEALTHCHECK (healthcheck.sh runs `python3 -m flaskbox.sidecars.health`;
`python3 -m flaskbox health` is the same check).

A liveness check: it fails when the container is broken, never because it
is busy, since what acts on it (Docker Swarm, autoheal, `restart` policies
watching health) replaces the container.

production  GET /-/healthy through nginx to a uWSGI worker. 200: healthy.
            Nothing answers and nginx has no workers (it could not fork
            them, at a pids limit): unhealthy, and says so.
            503 from nginx: every worker and the queue are full, so busy,
            not broken: healthy. No answer within 2 s: healthy only if uWSGI
            reports every worker in a request (the watchdog ends each
            within REQUEST_TIMEOUT); idle workers that do not answer are broken.
debug       the dev server must accept a connection (no request is sent, so
            the developer's log is not flooded with probe lines), and the
            app's last load must have worked (debug.py records it): a
            server answering every request with a traceback is unhealthy.
            (In production an app that cannot load stops the container.)

The mode and port come from the record of this start (record.py), because
`-d debug` and computed defaults are not in the environment.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from .. import record
from ..host import Host
from ..layout import DEBUG, Runtime
from ..log import error, log
from . import uwsgi_stats

PROBE_SECONDS = 2.0


def fail(message: str) -> None:
    error(message)
    sys.exit(1)


def workers_busy(runtime: Runtime) -> bool | None:
    """True when uWSGI's stats say every worker is in a request; None when
    the stats cannot be read."""
    stats = uwsgi_stats.read(runtime.stats_socket, PROBE_SECONDS)
    workers = stats.get("workers") if stats else None
    if not isinstance(workers, list):
        return None
    return bool(workers) and all(worker.get("status") == "busy" for worker in workers)


def nginx_workers(runtime: Runtime, proc: Path = Path("/proc")) -> int | None:
    """How many worker processes nginx's master has; None if unknown."""
    try:
        master = (runtime.nginx_dir / "nginx.pid").read_text().strip()
        return len((proc / master / "task" / master / "children").read_text().split())
    except (OSError, ValueError):
        return None


def without_workers(runtime: Runtime, host: Host | None = None, proc: Path = Path("/proc")) -> str:
    """Why nothing answers, when the reason is that nginx has no workers
    (it could not fork them: the pids limit, most often); else empty."""
    if nginx_workers(runtime, proc) != 0:
        return ""
    host = host or Host()
    limit, used = host.pids_limit(), host.pids_current()
    pids = f": the pids limit is {limit}, {used} in use" if limit else ""
    return f"nginx has no worker processes (it could not start them{pids})"


def probe(port: int) -> int:
    """The status of GET /-/healthy on `port`, read off the status line
    (http.client and the email parser it imports would cost every check some
    20 ms of CPU). TimeoutError past PROBE_SECONDS; OSError when nothing
    answers, or not in HTTP."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_SECONDS) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n" not in head and len(head) < 4096:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    version, _, rest = head.partition(b"\r\n")[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/") or not (code.isdigit() and len(code) == 3):
        raise OSError(f"not an HTTP answer: {head[:80]!r}")
    return int(code)


def check_production(port: int, runtime: Runtime) -> None:
    try:
        status = probe(port)
    except TimeoutError:
        reason = without_workers(runtime)
        if reason:
            fail(reason)
        busy = workers_busy(runtime)
        if busy:
            log("busy: every uWSGI worker is in a request")
            return
        fail(f"GET /-/healthy got no answer within {PROBE_SECONDS:g} s"
             + (" while uWSGI workers are idle" if busy is False else ""))
    except OSError as exc:
        fail(without_workers(runtime) or f"nothing answers on port {port} ({exc})")
    if status == 503:
        log("busy: every uWSGI worker and the queue are full")
        return
    if status != 200:
        fail(f"unhealthy: GET /-/healthy answered {status}")


def probe_address(listening: str) -> str:
    """Where to reach a server listening on `listening` from inside."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listening, listening)


def check_debug(port: int, host: str, runtime: Runtime) -> None:
    try:
        socket.create_connection((probe_address(host), port), timeout=PROBE_SECONDS).close()
    except OSError:
        fail(f"nothing listens on port {port}")
    try:
        state = runtime.debug_app.read_text().strip()
    except OSError:
        return  # not loaded yet: the server has only just started
    if state != "ok":
        fail(f"the app failed to load ({state.partition(' ')[2]}): every request gets the traceback "
             "until a save fixes it")


def main() -> None:
    runtime = record.runtime()
    try:
        settings = record.load(runtime)
    except (OSError, ValueError, KeyError):
        fail(f"no settings record {runtime.record}: the server has not started")
    if settings.mode == DEBUG:
        check_debug(settings["PORT"], settings["DEBUG_HOST"], runtime)
    else:
        check_production(settings["PORT"], runtime)


if __name__ == "__main__":
    main()
