"""The contenders: each server in the configuration its users run, started
as a container of the contenders' image."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from harness import CONTAINERS, CONTENDERS_TAG

from containers import Container
from helpers import free_port


def start(image: str, *command: str, env: dict[str, str] | None = None, port: int | None = None,
          timeout: float = 60, interval: float = 0.1, docker_args: tuple[str, ...] = (),
          health_check: bool = False) -> Container:
    """A container of `image` (on `port`, or a free one); returns once GET /
    answers 200. --no-healthcheck unless `health_check`: the image's own
    check would probe every contender."""
    docker_args = docker_args if health_check else ("--no-healthcheck", *docker_args)
    container = CONTAINERS.run(*command, env=env, image=image, port=port, docker_args=docker_args)
    container.wait_http("/", timeout=timeout, interval=interval)
    return container


@dataclass
class Contender:
    name: str
    label: str
    command: list[str]  # empty: the image's own entry point (production mode)
    env: dict[str, str] = field(default_factory=dict)
    image: str = CONTENDERS_TAG
    docker_args: tuple[str, ...] = ()  # --cpus, a config mounted over the image's
    health_check: bool = False  # the image's HEALTHCHECK runs, as users run it
    container: Container | None = None

    @property
    def port(self) -> int:
        return self.container.port

    def start(self) -> None:
        port = free_port()
        command = [part.replace("{PORT}", str(port)) for part in self.command]
        self.container = start(self.image, *command, env=self.env, port=port, docker_args=self.docker_args,
                               health_check=self.health_check)

    def stop(self) -> None:
        """Removes its container, if one runs; start() makes a new one."""
        if self.container:
            self.container.remove()
            self.container = None


def contenders(processes: int, threads: int) -> list[Contender]:
    """The servers, each in the configuration its users actually run."""
    return [
        Contender("flaskbox", "flaskbox production (nginx + uWSGI)", []),
        Contender("flaskbox-gevent", "flaskbox production, WORKER_CLASS=gevent", [],
                  env={"WORKER_CLASS": "gevent"}),
        # The best-known nginx + uWSGI Flask image's configuration, as its
        # own files (contenders/tiangolo), in this image.
        Contender("tiangolo-config", "nginx + uWSGI as the best-known such image: 1 nginx worker, "
                  "uWSGI cheaper 2..16 single-threaded processes, both logs on",
                  ["/bench/contenders/tiangolo/run.sh"]),
        # The CPU floor of flaskbox's architecture: nginx passing to uWSGI
        # with the same app and pool, and no feature at all (contenders/bare).
        bare_pass(processes, threads),
        # Where projects leaving uWSGI go.
        Contender("granian", "Granian, 2 WSGI workers",
                  ["granian", "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                   "--port", "{PORT}", "--working-dir", "/app", "app:app"]),
        Contender("gunicorn", "gunicorn, its defaults (1 sync worker)",
                  ["gunicorn", "--chdir", "/app", "-b", "127.0.0.1:{PORT}", "app:app"]),
        # The tutorial this project grew from: workers = 5, worker_class = "gevent".
        Contender("gunicorn-gevent", "gunicorn, 5 gevent workers",
                  ["gunicorn", "--chdir", "/app", "-w", "5", "-k", "gevent",
                   "-b", "127.0.0.1:{PORT}", "app:app"]),
        # uWSGI's own HTTP router, with flaskbox's default processes and threads.
        Contender("uwsgi-http", f"bare uwsgi --http, {processes} processes x {threads} threads",
                  ["uwsgi", "--http", "127.0.0.1:{PORT}", "--master", "--processes", str(processes),
                   "--threads", str(threads), "--chdir", "/app", "--module", "app:app"]),
        Contender("flask-dev", "Flask dev server (flaskbox -d debug)", ["-d", "debug"]),
    ]


def bare_pass(processes: int, threads: int, protocol: str = "uwsgi") -> Contender:
    """nginx -> uWSGI and nothing else, with flaskbox's pool: `uwsgi`
    (uwsgi_pass, the cheapest pass) or `http` (HTTP/1.1, as flaskbox's hop
    speaks)."""
    name = "bare-pass" if protocol == "uwsgi" else f"bare-pass-{protocol}"
    return Contender(name, f"bare nginx -> uWSGI ({protocol}), {processes} processes x {threads} threads, "
                     "the same app, no features", ["/bench/contenders/bare/run.sh"],
                     env={"BARE_PROTOCOL": protocol, "BARE_PROCESSES": str(processes),
                          "BARE_THREADS": str(threads)})


def nginx_gunicorn() -> Contender:
    """gunicorn's threaded worker behind the floor's nginx, sized as
    gunicorn's docs size it on 2 CPUs (2 x CPUs + 1 processes, a few
    threads each): the stack a user would pick instead of uWSGI."""
    return Contender("nginx-gunicorn", "bare nginx -> gunicorn gthread, 5 workers x 4 threads, the same app",
                     ["/bench/contenders/bare/run.sh"],
                     env={"BARE_PROTOCOL": "gunicorn", "BARE_PROCESSES": "5", "BARE_THREADS": "4"})


def gunicorn_workers(cpus: float | None = None) -> int:
    """gunicorn's docs' worker count: 2 x CPUs + 1 (the host's, or a quota's)."""
    return 2 * (math.ceil(cpus) if cpus else len(os.sched_getaffinity(0))) + 1


def nginx_gunicorn_sync() -> Contender:
    """gunicorn's sync worker behind the floor's nginx, as Airflow and most
    Flask deployments run it: --preload, 2 x CPUs + 1 workers, one request
    each (the docs put nginx in front: a sync worker is held by a slow
    client)."""
    workers = gunicorn_workers()
    return Contender("nginx-gunicorn-sync", f"bare nginx -> gunicorn sync --preload, {workers} workers, "
                     "the same app", ["/bench/contenders/bare/run.sh"],
                     env={"BARE_PROTOCOL": "gunicorn", "BARE_GUNICORN_CLASS": "sync", "BARE_PRELOAD": "1",
                          "BARE_PROCESSES": str(workers), "BARE_THREADS": "1"})


def traffic_contenders() -> list[Contender]:
    """The servers traffic.py measures, each with its own defaults."""
    by_name = {c.name: c for c in contenders(1, 1)}
    return [
        by_name["flaskbox"], by_name["granian"],
        # gunicorn's threaded worker as its docs size it: 2 x CPUs + 1
        # processes, a few threads each.
        Contender("gunicorn-gthread", "gunicorn, 5 gthread workers x 4 threads",
                  ["gunicorn", "--chdir", "/app", "-w", "5", "-k", "gthread", "--threads", "4",
                   "-b", "127.0.0.1:{PORT}", "app:app"]),
        by_name["gunicorn-gevent"],
    ]
