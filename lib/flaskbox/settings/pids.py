"""Fitting the pool into the cgroup's pids limit (--pids-limit, a pod's
pids limit): every process and every thread counts against it, and a pool
that does not fit fails in ways that look like it runs (nginx without
workers, uWSGI workers without their threads). The counts are of an idle
container of this image (docs/BENCHMARKS.md, "Processes and threads")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..layout import GEVENT

# Beside the pool: the arbiter (PID 1, one thread), the JSON log relay, the
# metrics server (3 threads while scraped), the certificate watcher, the
# health check and a `docker exec` at a time (2 each), the arbiter's
# `nginx -t`.
OVERHEAD = 12
# A sync worker process runs its request threads plus uWSGI's offload
# thread, flaskbox's watchdog and its stop-signal reader.
SYNC_EXTRA_THREADS = 3
# A gevent worker process: its own thread, the loop watch and gevent's
# thread pool (name resolution and other blocking calls), up to 10.
GEVENT_PROCESS_THREADS = 12


@dataclass(frozen=True)
class Need:
    steady: int   # serving
    reload: int   # during a reload: a second pool starts beside the first


def need(values: Mapping[str, str], threads: int) -> Need:
    processes = int(values["UWSGI_PROCESSES"])
    per_process = GEVENT_PROCESS_THREADS if values["WORKER_CLASS"] == GEVENT else threads + SYNC_EXTRA_THREADS
    pool = 1 + processes * per_process  # the master and its workers
    nginx = 1 + int(values["NGINX_WORKER_PROCESSES"])
    steady = OVERHEAD + nginx + pool
    return Need(steady, steady + pool)


def fitted_threads(values: Mapping[str, str], limit: int) -> tuple[int, bool] | None:
    """The most threads per process (at most UWSGI_THREADS) that fit the
    limit, and whether a reload's second pool fits beside it too; None when
    not even one thread fits."""
    wanted = int(values["UWSGI_THREADS"])
    for reload_too in (True, False):
        for threads in range(wanted, 0, -1):
            counts = need(values, threads)
            if (counts.reload if reload_too else counts.steady) <= limit:
                return threads, reload_too
    return None
