"""The image's HEALTHCHECK (healthcheck.sh runs `python3 -m flaskbox health`).

A liveness check: it fails when the container is broken, never because it
is busy, since what acts on it (Docker Swarm, autoheal, `restart` policies
watching health) replaces the container.

production  GET /-/healthy through nginx to a uWSGI worker. 200: healthy.
            503 from nginx: every worker and the queue are full, so busy,
            not broken: healthy. No answer within 2 s: healthy only if uWSGI
            reports every worker in a request (the watchdog ends each
            within REQUEST_TIMEOUT); idle workers that do not answer are broken.
debug       the dev server must accept a connection (no request is sent, so
            the developer's log is not flooded with probe lines), and the
            app's last load must have worked (debug.py records it): a
            server answering every request with a traceback is unhealthy.
            (In production an app that cannot load stops the container.)

The mode and port come from the state file the entry-point wrote at start,
because `-d debug` and computed defaults are not in the environment.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from pathlib import Path

from .log import error, log
from .settings import BY_NAME

PROBE_SECONDS = 2.0


def fail(message: str) -> None:
    error(message)
    sys.exit(1)


def runtime_dir() -> Path:
    return Path(os.environ.get("RUNTIME_DIR") or BY_NAME["RUNTIME_DIR"].default)


def workers_busy(runtime: Path) -> bool | None:
    """True when uWSGI's stats say every worker is in a request; None when
    the stats cannot be read."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(PROBE_SECONDS)
            sock.connect(str(runtime / "uwsgi-stats.sock"))
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        workers = json.loads(data)["workers"]
    except (OSError, ValueError, KeyError):
        return None
    return bool(workers) and all(worker.get("status") == "busy" for worker in workers)


def check_production(port: int, runtime: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_SECONDS)
    try:
        conn.request("GET", "/-/healthy", headers={"Host": "localhost"})
        status = conn.getresponse().status
    except TimeoutError:
        busy = workers_busy(runtime)
        if busy:
            log("busy: every uWSGI worker is in a request")
            return
        fail(f"GET /-/healthy got no answer within {PROBE_SECONDS:g} s"
             + (" while uWSGI workers are idle" if busy is False else ""))
    except OSError as exc:
        fail(f"nothing answers on port {port} ({exc})")
    finally:
        conn.close()
    if status == 503:
        log("busy: every uWSGI worker and the queue are full")
        return
    if status != 200:
        fail(f"unhealthy: GET /-/healthy answered {status}")


def check_debug(port: int, runtime: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=PROBE_SECONDS).close()
    except OSError:
        fail(f"nothing listens on port {port}")
    try:
        state = (runtime / "debug.app").read_text().strip()
    except OSError:
        return  # not loaded yet: the server has only just started
    if state != "ok":
        fail(f"the app failed to load ({state.partition(' ')[2]}): every request gets the traceback "
             "until a save fixes it")


def main() -> None:
    runtime = runtime_dir()
    try:
        mode, port = (runtime / "state").read_text().split()
    except (OSError, ValueError):
        fail(f"no state file {runtime / 'state'}: the server has not started")
    if mode == "debug":
        check_debug(int(port), runtime)
    else:
        check_production(int(port), runtime)
