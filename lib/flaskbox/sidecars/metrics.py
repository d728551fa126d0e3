"""METRICS_PORT: Prometheus text at /metrics, from one small process beside
nginx and uWSGI (one of the arbiter's helpers: it starts and restarts it).

Where the numbers come from, so that they are exact across every worker and
process, recycled ones included, and cost a request nothing:

- nginx writes one short line per request (the handler, status, duration,
  refusal reason and method) to RUNTIME_DIR/metrics/access.log, buffered as
  its stdout log is, and its warnings to RUNTIME_DIR/metrics/error.log (each
  limit_conn refusal names its zone there). This process reads both as they
  grow and counts; past ROTATE_BYTES it renames them and has nginx reopen
  them (SIGUSR1). A file never drops a line, however far behind this process
  falls, and if it is slow or dead nginx carries on writing (a unix datagram
  socket keeps only ~10 unread lines: net.unix.max_dgram_qlen);
- uWSGI's stats socket, read at scrape time: workers by state, respawns,
  the listen queue, the requests in workers now;
- nginx's stub_status (a unix socket of its own): connections and requests
  in flight;
- each uWSGI worker's open streams and WebSockets, in a small file of its own
  (streams.publish), summed over the workers alive.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http import HTTPStatus
from pathlib import Path

from .. import record
from ..layout import Generation, Runtime
from ..log import error
from . import uwsgi_stats
from .nginx_lines import BUCKETS, HANDLERS, REASONS, REPLACED, ROTATE_BYTES, ZONES, Counts, Tail

__all__ = ["Collector", "Counts", "Tail", "ZONES", "main"]



class Collector:
    def __init__(self, runtime: Path, queue_size: int, worker_class: str):
        self.runtime = runtime
        self.place = Runtime(runtime)
        self.dir = runtime / "metrics"
        self.queue_size = queue_size
        self.counts = Counts()
        self.lock = threading.Lock()
        self.access = Tail(self.dir / "access.log", self.counts.access)
        self.errors = Tail(self.dir / "error.log", self.counts.error)
        self.versions = build_versions(worker_class)

    def poll(self) -> None:
        with self.lock:
            # Either file: under a flood of refusals, the warnings (~250
            # bytes each) grow ten times faster than the request lines.
            size = max(self.access.read(), self.errors.read())
            if size >= ROTATE_BYTES:
                self._rotate()

    def _rotate(self) -> None:
        try:
            pid = int((self.runtime / "nginx" / "nginx.pid").read_text())
        except (OSError, ValueError):
            return
        self.access.rename()
        self.errors.rename()
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            self.access.unrename()
            self.errors.unrename()

    def render(self) -> str:
        self.poll()
        with self.lock:
            lines = self._requests()
        stats = uwsgi_stats.read(self.place.stats_socket)
        lines += self._workers(stats, self._retiring())
        lines += self._nginx(read_stub_status(self.place.status_socket))
        lines += self._streams(stats)
        lines += self._info()
        return "\n".join(lines) + "\n"

    def _requests(self) -> list[str]:
        counts = self.counts
        out = header("flaskbox_http_requests_total", "counter",
                     "HTTP requests answered, by handler (app or static), method and status.")
        for (handler, method, status), value in sorted(counts.requests.items()):
            out.append(f'flaskbox_http_requests_total{{handler="{handler}",method="{method}",'
                       f'status="{status}"}} {value}')
        out += header("flaskbox_http_request_duration_seconds", "histogram",
                      "Time from the request's first byte to its response's last, as nginx measures it.")
        for handler in HANDLERS:
            for bound, value in zip(BUCKETS, counts.buckets[handler], strict=True):
                out.append(f'flaskbox_http_request_duration_seconds_bucket{{handler="{handler}",'
                           f'le="{float(bound)}"}} {value}')
            out.append(f'flaskbox_http_request_duration_seconds_bucket{{handler="{handler}",le="+Inf"}} '
                       f"{counts.observed[handler]}")
            out.append(f'flaskbox_http_request_duration_seconds_sum{{handler="{handler}"}} '
                       f"{counts.duration[handler]:.3f}")
            out.append(f'flaskbox_http_request_duration_seconds_count{{handler="{handler}"}} '
                       f"{counts.observed[handler]}")
        out += header("flaskbox_refusals_total", "counter",
                      "Requests refused (503 with Retry-After) by reason: a full queue, a per-client "
                      "limit, connection slots, upload space, stream slots, a client's share of threads.")
        out += [f'flaskbox_refusals_total{{reason="{reason}"}} {counts.refusals[reason]}'
                for reason in REASONS]
        out += header("flaskbox_request_timeouts_total", "counter",
                      "Handlers that ran past REQUEST_TIMEOUT (answered 504).")
        out.append(f"flaskbox_request_timeouts_total {counts.timeouts}")
        return out

    def _retiring(self) -> list[dict]:
        """The stats of the generations a reload retires: older than the
        current one, still finishing their requests beside it (a newer one
        is still starting, and serves nobody yet)."""
        try:
            current = int(os.readlink(self.place.uwsgi_dir / "current").rstrip("/").rpartition("/")[2][1:])
        except (OSError, ValueError):
            return []
        found = []
        for folder in self.place.uwsgi_dir.glob("g*"):
            number = folder.name[1:]
            if number.isdigit() and int(number) < current:
                stats = uwsgi_stats.read(Generation(folder).stats_socket, timeout=1.0)
                if stats is not None:
                    found.append(stats)
        return found

    def _limits(self) -> dict[int, int]:
        """Each worker's ADAPTIVE_THREADS limit, by pid, as its gate last said it (gate-PID)."""
        limits = {}
        for path in self.place.uwsgi_dir.glob("g*/gate-*"):
            try:
                limits[int(path.name[5:])] = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return limits

    def _workers(self, stats: dict | None, retiring: list[dict]) -> list[str]:
        """The current pool's workers; the gauges of what is in flight count
        a retiring generation's too, which a reload leaves finishing its
        requests (RELOAD_GRACE)."""
        out = header("flaskbox_up", "gauge", "1 when uWSGI's stats could be read.")
        out.append(f"flaskbox_up {int(stats is not None)}")
        stats = stats or {"workers": [], "sockets": []}
        workers = [worker for worker in stats.get("workers", []) if worker.get("pid")]
        every = workers + [worker for pool in retiring for worker in pool.get("workers", [])
                           if worker.get("pid")]
        cores = {worker["pid"]: sum(1 for core in worker.get("cores", []) if core.get("in_request"))
                 for worker in every}
        states = Counter("busy" if worker.get("status") == "busy" and cores[worker["pid"]] else "idle"
                         for worker in every)
        out += header("flaskbox_workers", "gauge",
                      "uWSGI worker processes by state (a reload's retiring generation included).")
        out += [f'flaskbox_workers{{state="{state}"}} {states[state]}' for state in ("busy", "idle")]
        out += header("flaskbox_worker_respawns_total", "counter",
                      "Worker processes started again (recycled, retired or killed) since uWSGI started.")
        respawns = sum(max(worker.get("respawn_count", 1) - 1, 0) for worker in stats.get("workers", []))
        out.append(f"flaskbox_worker_respawns_total {respawns}")
        limits = self._limits()
        if limits:
            out += header("flaskbox_worker_limit", "gauge",
                          "Requests each uWSGI worker runs at once, as ADAPTIVE_THREADS last set it.")
            out += [f'flaskbox_worker_limit{{worker="{worker["id"]}"}} {limits[worker["pid"]]}'
                    for worker in workers if worker["pid"] in limits]
        out += header("flaskbox_worker_memory_bytes", "gauge", "Resident memory of each uWSGI worker.")
        out += [f'flaskbox_worker_memory_bytes{{worker="{worker["id"]}"}} {rss(worker["pid"])}'
                for worker in workers]
        in_request = sum(cores.values())
        out += header("flaskbox_app_requests_in_flight", "gauge", "Requests inside uWSGI workers now.")
        out.append(f"flaskbox_app_requests_in_flight {in_request}")
        queue = sum(uwsgi_stats.queued(pool) for pool in (stats, *retiring) if pool.get("sockets"))
        out += header("flaskbox_queue_depth", "gauge", "Requests waiting for a uWSGI worker now.")
        out.append(f"flaskbox_queue_depth {queue}")
        out += header("flaskbox_queue_size", "gauge", "QUEUE_SIZE: waiting requests allowed before a 503.")
        out.append(f"flaskbox_queue_size {self.queue_size}")
        return out

    def _nginx(self, status: dict[str, int] | None) -> list[str]:
        status = status or {}
        out = header("flaskbox_requests_in_flight", "gauge",
                     "Requests nginx is answering now (app and static), this scrape excluded.")
        out.append(f"flaskbox_requests_in_flight {max(status.get('writing', 1) - 1, 0)}")
        out += header("flaskbox_connections", "gauge", "Client connections by state, from nginx.")
        out += [f'flaskbox_connections{{state="{state}"}} {status.get(state, 0)}'
                for state in ("reading", "writing", "waiting")]
        return out

    def _streams(self, stats: dict | None) -> list[str]:
        streams = websockets = 0
        for path in self.dir.glob("worker-*"):
            pid = path.name.removeprefix("worker-")
            if not pid.isdigit():
                continue  # a file being written (worker-PID.new)
            # Alive in any generation: a reload's old one finishes its
            # streams beside the current one.
            if not os.path.exists(f"/proc/{pid}"):
                self._gone(path)
                continue
            try:
                open_streams, open_websockets = path.read_text().split()[:2]
                streams, websockets = streams + int(open_streams), websockets + int(open_websockets)
            except (OSError, ValueError):
                continue
        self.counts.replaced["oom_kill"] = oom_kills(self.dir / "oom-kills")
        out = header("flaskbox_worker_replacements_total", "counter",
                     "Workers replaced by reason: a handler past REQUEST_TIMEOUT still holding its thread "
                     "(stuck_request), gevent's loop blocked as long (blocked_loop), WORKER_MAX_MEMORY "
                     "passed (memory), the kernel's OOM killer (oom_kill).")
        out += [f'flaskbox_worker_replacements_total{{reason="{reason}"}} {self.counts.replaced[reason]}'
                for reason in REPLACED]
        out += header("flaskbox_open_streams", "gauge", "Streamed responses (chunked, SSE) open now.")
        out.append(f"flaskbox_open_streams {streams}")
        out += header("flaskbox_open_websockets", "gauge", "WebSockets open now.")
        out.append(f"flaskbox_open_websockets {websockets}")
        return out

    def _gone(self, path: Path) -> None:
        """A worker that exited: counted if guards.py replaced it, then forgotten."""
        try:
            fields = path.read_text().split()
        except OSError:
            fields = []
        if len(fields) == 3 and fields[2] in REPLACED:
            with self.lock:
                self.counts.replaced[fields[2]] += 1
        path.unlink(missing_ok=True)

    def _info(self) -> list[str]:
        labels = ",".join(f'{name}="{value}"' for name, value in self.versions.items())
        out = header("flaskbox_build_info", "gauge", "Versions of what serves: always 1.")
        out.append(f"flaskbox_build_info{{{labels}}} 1")
        out += header("flaskbox_draining", "gauge", "1 while the container stops: nginx drains, then uWSGI.")
        out.append(f"flaskbox_draining {int((self.runtime / 'draining').exists())}")
        return out


def oom_kills(path: Path) -> int:
    """Workers the OOM killer ended, as the uWSGI masters noted them
    (forks.SpawnGuard: one line per respawn after a kill)."""
    try:
        return sum(int(line) for line in path.read_text().split() if line.isdigit())
    except OSError:
        return 0


def header(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def read_unix(path: Path, request: bytes = b"") -> bytes | None:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            if request:
                sock.sendall(request)
            return b"".join(iter(lambda: sock.recv(65536), b""))
    except OSError:
        return None


STUB = re.compile(rb"Reading: (\d+) Writing: (\d+) Waiting: (\d+)")


def read_stub_status(path: Path) -> dict[str, int] | None:
    data = read_unix(path, b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n")
    match = STUB.search(data or b"")
    if not match:
        return None
    return dict(zip(("reading", "writing", "waiting"), map(int, match.groups()), strict=True))


def build_versions(worker_class: str) -> dict[str, str]:
    def version(command: list[str], pattern: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        found = re.search(pattern, done.stdout + done.stderr)
        return found.group(1) if found else "unknown"

    return {
        "nginx": version(["nginx", "-v"], r"nginx/(\S+)"),
        "uwsgi": version(["uwsgi", "--version"], r"^(\S+)"),
        "python": version(["python", "--version"], r"Python (\S+)"),
        "worker_class": worker_class,
    }


class Handler(http.server.BaseHTTPRequestHandler):
    collector: Collector

    def do_GET(self):  # noqa: N802 (http.server's name)
        self._answer(with_body=True)

    def do_HEAD(self):  # noqa: N802
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = self.server.collector.render().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        if code != HTTPStatus.NOT_IMPLEMENTED:
            super().send_error(code, message, explain)
            return
        # http.server's answer to a method with no do_: a 501 that any
        # client could provoke. Not allowed here is what it means.
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # a scrape a second is not news


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # SHARE_PORT=1, as nginx's `listen ... reuseport`: on a node's host
    # network a rolling update's new task starts beside the old one
    # (deploy/swarm/stack.host.yaml), and both hold METRICS_PORT until the
    # old one exits. Only processes of the same uid may share it; anything
    # else holding the port still stops the start.
    allow_reuse_port = False

    def handle_error(self, request, client_address):
        # A scraper that hung up mid-answer is not an error of this server
        # (socketserver would print a traceback for each one).
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def keep_reading(collector: Collector) -> None:
    """Between scrapes too, so that the files are rotated however rarely
    Prometheus comes."""
    while True:
        time.sleep(1)
        try:
            collector.poll()
        except OSError as exc:
            error(f"metrics: reading nginx's lines: {exc}")


def main() -> None:
    settings = record.load()
    runtime, port = record.runtime().dir, settings["METRICS_PORT"]
    collector = Collector(runtime, settings["QUEUE_SIZE"], settings["WORKER_CLASS"])
    Server.allow_reuse_port = settings["SHARE_PORT"]
    try:
        server = Server(("0.0.0.0", port), Handler)  # noqa: S104 (Prometheus scrapes from outside)
    except OSError as exc:
        error(f"METRICS_PORT={port}: cannot listen there ({exc.strerror}); choose a free port")
        sys.exit(1)
    server.collector = collector
    threading.Thread(target=keep_reading, args=(collector,), daemon=True).start()
    (runtime / "metrics" / "ready").touch()
    server.serve_forever()
