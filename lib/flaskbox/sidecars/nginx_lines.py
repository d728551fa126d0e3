"""What nginx writes for METRICS_PORT and how metrics.py counts it: the line
per request (handler, status, duration, refusal mark, method), the
limit_conn zones its warnings name and the refusal reason of each, and a
reader that follows a file as it grows, across renames (Tail).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path

BUCKETS = (0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Methods kept as they are; any other is counted as _OTHER (OpenTelemetry's
# spelling), so that made-up methods cannot grow the series without bound.
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
HANDLERS = ("app", "static")
# Why a request was refused: nginx's limit_conn zones (nginx.conf) and the
# answers nginx.conf and serve.py mark.
ZONES = {
    "flaskbox_clients": "per_client",
    "flaskbox_body_clients": "per_client",
    "flaskbox_static_clients": "per_client",
    "flaskbox_bodies": "connection_slots",
    "flaskbox_static": "connection_slots",
    "flaskbox_uploads": "upload_space",
    "flaskbox_upload_clients": "upload_space",
}
MARKED = {"queue_full", "queue_timeout", "queue_wait", "stream_slots", "stream_share"}
REASONS = ("queue_full", "queue_timeout", "queue_wait", "per_client", "connection_slots", "upload_space",
           "stream_slots", "stream_share")
MARK_WORD = re.compile(r"[a-z_]+")
LIMITED = re.compile(rb'limiting connections by zone "([a-z_]+)"')
# Rotated past this size: at 8000 requests/s, about every 30 s.
ROTATE_BYTES = 8 << 20
# How long nginx's workers may still write to a renamed file (they flush
# their buffers within flush=1s of the reopen).
REOPEN_GRACE_SECONDS = 3

# Why guards.py replaced a worker: a handler past REQUEST_TIMEOUT still held
# its thread (sync), or gevent's loop was blocked that long.
# Why flaskbox replaced a worker (guards.py): a handler stuck past
# REQUEST_TIMEOUT, gevent's loop blocked as long, WORKER_MAX_MEMORY passed;
# and why the kernel did: its OOM killer (forks.SpawnGuard notes it).
REPLACED = ("stuck_request", "blocked_loop", "memory", "oom_kill")


class Counts:
    """Everything counted from nginx's lines since this process started."""

    def __init__(self):
        self.requests: Counter = Counter()  # (handler, method, status)
        self.buckets = {handler: [0] * len(BUCKETS) for handler in HANDLERS}
        self.duration = dict.fromkeys(HANDLERS, 0.0)
        self.observed = dict.fromkeys(HANDLERS, 0)
        self.refusals = dict.fromkeys(REASONS, 0)
        self.timeouts = 0
        # Workers guards.py replaced, by reason (their files, once they are gone).
        self.replaced = dict.fromkeys(REPLACED, 0)

    def access(self, line: bytes) -> None:
        """One line of nginx.conf's flaskbox_metrics format:
        handler|status|seconds|mark|method."""
        try:
            handler, status, seconds, mark, method = line.decode("ascii", "replace").split("|", 4)
            took = float(seconds)
        except ValueError:
            return
        handler = handler if handler in HANDLERS else "app"
        method = method if method in METHODS else "_OTHER"
        status = status if len(status) == 3 and status.isdigit() else "000"
        self.requests[handler, method, status] += 1
        self.duration[handler] += took
        self.observed[handler] += 1
        counts = self.buckets[handler]
        for index, bound in enumerate(BUCKETS):
            if took <= bound:
                counts[index] += 1
        # nginx.conf's reason and the app's X-Flaskbox-Outcome, joined: nginx
        # writes "-" for an upstream that gave no answer ("queue_full-"),
        # and one value per upstream tried ("-, stream_slots"). The last
        # word counts.
        words = MARK_WORD.findall(mark)
        mark = words[-1] if words else ""
        if mark == "timeout":
            self.timeouts += 1
        elif mark in MARKED:
            self.refusals[mark] += 1

    def error(self, line: bytes) -> None:
        match = LIMITED.search(line)
        if match and match.group(1).decode() in ZONES:
            self.refusals[ZONES[match.group(1).decode()]] += 1


class Tail:
    """One of nginx's files, read as it grows; renamed and reopened by
    nginx once large, then read to its end before it is removed."""

    def __init__(self, path: Path, count):
        self.path, self.count = path, count
        self.file = None
        self.partial = b""
        self.retired: list[tuple[float, str, object]] = []  # (when renamed, new name, open file)

    def read(self) -> int:
        """Counts the whole lines written since the last read; returns the
        size of the current file. A renamed file is read to its end first,
        so that a line cut in two by a read is joined within its own file."""
        self.finish_retired()
        if self.retired:
            return 0
        if self.file is None:
            try:
                self.file = open(self.path, "rb")  # noqa: SIM115 (kept open between reads)
            except FileNotFoundError:
                return 0
        self._lines(self.file)
        return os.fstat(self.file.fileno()).st_size

    def _lines(self, file) -> None:
        data = self.partial + file.read()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self.count(line)

    def rename(self) -> None:
        if self.file is None:
            return
        name = f"{self.path}.old-{time.monotonic_ns()}"
        os.replace(self.path, name)
        self.retired.append((time.monotonic(), name, self.file))
        self.file = None

    def unrename(self) -> None:
        """nginx could not be told to reopen: it still writes the renamed
        file, which becomes the current one again."""
        if self.retired:
            _, name, self.file = self.retired.pop()
            os.replace(name, self.path)

    def finish_retired(self) -> None:
        """Files nginx no longer writes: their last lines, then gone."""
        keep = []
        for renamed, name, file in self.retired:
            if time.monotonic() - renamed < REOPEN_GRACE_SECONDS:
                keep.append((renamed, name, file))
                continue
            self._lines(file)
            self.partial = b""
            file.close()
            Path(name).unlink(missing_ok=True)
        self.retired = keep
