"""Defaults computed from the container and from the settings before them
in the table: how many processes and threads, how long the queue, how much
disk buffered bodies and responses may take. Each says why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..host import Host
from ..layout import GEVENT, NGINX_CONNECTIONS_TOTAL
from .forms import size_bytes


@dataclass
class Context:
    """What a computed default may look at: the mode, the container, the
    environment, and the settings before it in the table."""

    mode: str
    host: Host
    env: Mapping[str, str]
    values: dict[str, str]
    notes: list[str] = field(default_factory=list)  # info lines for the log



def debug_host(context: Context) -> str:
    """The debugger runs any code it is sent: on the host's network every
    interface of the machine is the LAN's, so the dev server keeps to
    loopback there; in a container's own network only 0.0.0.0 is reachable
    through a published port (-p 127.0.0.1:5000:5000 keeps that local)."""
    return "127.0.0.1" if context.host.host_network() else "0.0.0.0"


def capacity(values: Mapping[str, str]) -> int:
    """Requests uWSGI serves at once: a thread each in sync mode, up to
    WORKER_CONNECTIONS per process in gevent mode."""
    gevent = values["WORKER_CLASS"] == GEVENT
    per_process = values["WORKER_CONNECTIONS"] if gevent else values["UWSGI_THREADS"]
    return int(values["UWSGI_PROCESSES"]) * int(per_process)


def processes(context):
    # gevent: one process, which holds thousands of connections. Socket.IO
    # and any other in-process session state then need no sticky routing;
    # more processes get it by client address (render.py, upstreams).
    if context.values["WORKER_CLASS"] == GEVENT:
        return "1"
    # sync: one process per CPU, each with its own interpreter (its own
    # Python lock) and UWSGI_THREADS threads, of which ADAPTIVE_THREADS runs
    # about two at once while they compute: a large app's first-request
    # set-up and its memory are paid once per process, and two a CPU ran
    # its computing pages four at a CPU (docs/BENCHMARKS.md, "Pages that
    # wait, and the pool's shape"). At least 2, so that one serves while the
    # other is replaced; at most 32 on a big host.
    return str(min(max(context.host.cpus(), 2), 32))


def threads(context):
    # sync: 32 threads per process, 32 a CPU with one process a CPU. Most
    # of a real app's time is spent waiting (a database, an API, a slow
    # phone, an open event stream), and a waiting thread holds no CPU: with
    # one thread per process, four waits filled the pool (docs/BENCHMARKS.md,
    # "Waiting, slow clients, open streams"). A sync thread holds an open
    # event stream, and 50 streams from one address beside ordinary traffic
    # need more than 32 threads on 2 CPUs; ADAPTIVE_THREADS runs only about
    # two at once of those that compute. REQUEST_TIMEOUT stays per request
    # (guards.Watchdog). gevent: one thread, by definition.
    return "1" if context.values["WORKER_CLASS"] == GEVENT else "32"


def worker_max_memory(context):
    # Each worker process's fair share of 90 % of the memory limit, as
    # resident memory: past it a worker that keeps growing (a leak, a cache
    # without a bound) is replaced gracefully, before the kernel's OOM killer
    # ends it and every request its threads hold. No limit: off.
    limit = context.host.memory_limit()
    if not limit:
        return "0"
    return f"{max(limit * 9 // 10 // int(context.values['UWSGI_PROCESSES']) >> 20, 1)}m"


def _runtime_space(context, share: int) -> str:
    # 1/share of RUNTIME_DIR's file system; on a tmpfs (memory), of the
    # container's memory limit too, since that is where it is held.
    host = context.host
    mount = host.mount_of(context.values["RUNTIME_DIR"])
    if mount is None:
        return "1g"
    space = mount.size
    if mount.fstype == "tmpfs" and host.memory_limit():
        space = min(space, host.memory_limit())
    return f"{max(space // share, 1 << 20) >> 20}m"


def queue(context):
    # Requests waiting for a free uWSGI thread, beyond those being served:
    # 4 per thread, at least 64. At 4 per thread a request that finds the
    # queue full would wait behind 4 others on each thread: with handlers
    # of 50-200 ms that is 0.2-0.8 s, past which a fast 503 with Retry-After
    # serves a client better than waiting (and REQUEST_TIMEOUT bounds any
    # wait: serve.py). The floor of 64 keeps a burst of 64 concurrent
    # requests (a page's assets, a load test with 64 connections) queued
    # rather than refused on small containers.
    # gevent: a request waits only once WORKER_CONNECTIONS are taken, which
    # a queue cannot fix; 64 per process absorbs a reconnect storm.
    values = context.values
    if values["WORKER_CLASS"] == GEVENT:
        return str(min(64 * int(values["UWSGI_PROCESSES"]), 100000))
    return str(min(max(64, 4 * capacity(values)), 100000))


def per_client(context):
    # What uWSGI can hold: busy workers plus the queue. One address may fill
    # it (a load test from one machine, or a front proxy whose address is
    # not in TRUSTED_PROXIES, is never throttled below the container's
    # capacity; once it is full everyone gets a fast 503), and holds no more
    # than that of nginx's connections.
    values = context.values
    return str(min(capacity(values) + int(values["QUEUE_SIZE"]), 1000000))


def nginx_connections(context):
    # NGINX_CONNECTIONS_TOTAL shared by the workers; two open files each
    # (the client's and uWSGI's) must fit the hard limit on open files.
    connections = -(-NGINX_CONNECTIONS_TOTAL // int(context.values["NGINX_WORKER_PROCESSES"]))
    files = context.host.open_files_limit()
    return str(max(64, min(connections, (files - 64) // 2)))


def upload_space(context):
    # Half of RUNTIME_DIR's room for request bodies being received, and
    # never less than one body of the largest size allowed.
    space, body = _runtime_space(context, 2), context.values["MAX_BODY_SIZE"]
    if size_bytes(body) and size_bytes(space) < size_bytes(body):
        context.notes.append(
            f"{context.values['RUNTIME_DIR']} is small: UPLOAD_SPACE raised to MAX_BODY_SIZE ({body}), so "
            "one upload at a time; give it more room (e.g. --tmpfs /tmp:size=256m)")
        return body
    return space


def response_space(context):
    # ...and a quarter for responses waiting for slow clients, so that the
    # two together never fill it.
    return _runtime_space(context, 4)
