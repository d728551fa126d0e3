"""uWSGI's stats socket (app.ini, `stats`), read by the reload's wait for a
generation to finish (arbiter/generation.py), the health check (health.py) and
METRICS_PORT (metrics.py).

uWSGI writes each request in flight into its stats with its variables as
the client sent them, escaping only quotes, backslashes, tabs and line
ends. One header byte such as \\xff or \\x01 in a request that is still
running made the whole document invalid JSON: the reload took the old code
for idle and cut its downloads, and the health check called a busy
container unhealthy. So the text is decoded leniently (an odd byte becomes
U+FFFD) and control characters are let through inside strings. Only the
standard library: the health check imports this every 10 s."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from . import unix_sockets


def parse(data: bytes) -> dict | None:
    """The stats document, or None when it is not one."""
    try:
        stats = json.loads(data.decode("utf-8", "replace"), strict=False)
    except ValueError:
        return None
    return stats if isinstance(stats, dict) else None


def read(path: Path, timeout: float = 2.0) -> dict | None:
    """What the stats socket at `path` says, or None (nothing listens, it
    is silent past `timeout`, or it sent no stats document)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            data = b"".join(iter(lambda: sock.recv(65536), b""))
    except OSError:
        return None
    return parse(data)


def queued(stats: dict) -> int:
    """Requests waiting for a worker in the listen queues of the uWSGI whose
    stats these are: the kernel's count (unix_sockets.backlog), as uWSGI's
    own `queue` reads 0 for a unix socket; uWSGI's when the kernel will not say."""
    sockets = [sock for sock in stats.get("sockets", []) if isinstance(sock, dict)]
    paths = {sock.get("name") for sock in sockets}
    waiting = unix_sockets.backlog(paths, stats["pid"]) if isinstance(stats.get("pid"), int) else None
    return waiting if waiting is not None else sum(sock.get("queue", 0) for sock in sockets)
