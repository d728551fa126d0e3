"""However a worker ends, the app's exit handlers (an SDK's last flush:
Sentry's, OpenTelemetry's) run to their end, within a budget the operator
controls (issue 54): the watchdog's retirement of a worker with a stuck
request, WORKER_MAX_MEMORY's replacement, the old code's workers at a
reload, every worker at `docker stop` under load. The fixture app's
exits.py prints its handler's start and end with the pid."""

from __future__ import annotations

import re
import threading
import time

import pytest

from helpers import docker

FLUSH_START = "exit handler start pid={}"
FLUSH_END = "exit handler end pid={}"
BUDGET_CLAIMS = ("past its budget", "past their budget", "slow to stop")


def exits_app(containers, fixture_image, *, probed: bool = True, **env: str):
    """The fixture's exits app, serving. probed=False: no request reaches it
    before the test's own, not even the image's health probe."""
    env = {"APP_MODULE": "exits:app", **env}
    if probed:
        return containers.serving(image=fixture_image["image"], env=env)
    c = containers.run(image=fixture_image["image"], docker_args=("--no-healthcheck",), env=env)
    c.wait_until(lambda: "flaskbox: serving" in c.logs(), "serving")
    return c


def ran_to_the_end(logs: str, pid: str) -> bool:
    return logs.count(FLUSH_START.format(pid)) == 1 and logs.count(FLUSH_END.format(pid)) == 1


def flushed(c, pid: str) -> str:
    """Once worker `pid`'s exit handler has ended: it ran to its end and no
    budget was claimed. The log."""
    c.wait_until(lambda: FLUSH_END.format(pid) in c.logs(), "its exit handler's end", timeout=20)
    logs = c.logs()
    assert ran_to_the_end(logs, pid), logs
    assert not [claim for claim in BUDGET_CLAIMS if claim in logs], logs
    return logs


def test_a_worker_the_watchdog_retires_runs_its_exit_handlers_to_their_end(containers, fixture_image):
    c = exits_app(containers, fixture_image, REQUEST_TIMEOUT="3", UWSGI_PROCESSES="1")
    started = time.monotonic()
    hung = c.request("/hang", timeout=30)
    # The guarantee stays: the hung request ends at REQUEST_TIMEOUT.
    assert hung.status == 504 and time.monotonic() - started < 5, hung
    found = c.wait_until(lambda: re.search(r"worker pid (\d+) retired", c.logs()), "the worker's retirement")
    pid = found.group(1)
    flushed(c, pid)
    # A fresh worker serves.
    c.wait_until(lambda: c.request("/count").json()["pid"] != int(pid), "a fresh worker serving")


def test_a_worker_past_worker_max_memory_runs_its_exit_handlers_to_their_end(containers, fixture_image):
    c = exits_app(containers, fixture_image, WORKER_MAX_MEMORY="150m", UWSGI_PROCESSES="1")
    pid = str(c.request("/hold/200", timeout=30).json()["pid"])
    c.wait_until(lambda: "past WORKER_MAX_MEMORY (150 MB)" in c.logs(), "the worker's replacement")
    flushed(c, pid)
    c.wait_until(lambda: c.request("/count").json()["pid"] != int(pid), "a fresh worker serving")


def test_a_worker_recycled_at_max_requests_runs_its_exit_handlers_to_their_end(containers, fixture_image):
    c = exits_app(containers, fixture_image, UWSGI_PROCESSES="1", UWSGI_MAX_REQUESTS="20",
                  UWSGI_MAX_REQUESTS_DELTA="0", UWSGI_MIN_WORKER_LIFETIME="1")
    first = c.request("/count").json()["pid"]
    c.wait_until(lambda: c.request("/count").json()["pid"] != first, "the worker's replacement")
    pid = str(first)
    logs = flushed(c, pid)
    assert "NO MERCY" not in logs, logs


def test_the_old_codes_workers_run_their_exit_handlers_at_a_reload(containers, fixture_image):
    # A flush of 3 s: the old fixed 2 s killed every one of them.
    c = exits_app(containers, fixture_image, EXIT_FLUSH_SECONDS="3", UWSGI_PROCESSES="4", RELOAD_GRACE="20")
    old = c.pids("flaskbox uWSGI worker")
    assert len(old) == 4, c.processes()
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "reload: the old code (generation 1) has finished its requests and stopped"
                 in c.logs(), "the old code's end", timeout=60)
    logs = c.logs()
    assert [pid for pid in old if ran_to_the_end(logs, pid)] == old, logs
    assert not [claim for claim in BUDGET_CLAIMS if claim in logs], logs
    assert c.request("/count").status == 200


def stopped_under_load(c, workers: list[str]) -> str:
    """docker stop (10 s) while four clients keep the workers busy: the
    stop is bounded by STOP_TIMEOUT, before docker's SIGKILL, every client
    got 200s, every worker's exit handler ran to its end and no budget was
    claimed. The log."""
    stopping = threading.Event()
    served: list[int] = []

    def client() -> None:
        deadline = time.monotonic() + 30
        while not stopping.is_set() and time.monotonic() < deadline:
            try:
                served.append(c.request("/count", timeout=5).status)
            except OSError:
                return  # the stop closed the port

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    c.wait_until(lambda: len(served) >= 40, "load on the workers")
    started = time.monotonic()
    docker("stop", "--time", "10", c.name, timeout=40)
    took = time.monotonic() - started
    stopping.set()
    for thread in clients:
        thread.join(10)
    logs = c.logs()
    assert c.exit_code() == 0, logs
    assert took < 10, (took, logs)
    assert [pid for pid in workers if ran_to_the_end(logs, pid)] == workers, logs
    assert not [claim for claim in BUDGET_CLAIMS if claim in logs], logs
    assert set(served) == {200}, served
    return logs


def test_every_worker_runs_its_exit_handlers_at_docker_stop_under_load(containers, fixture_image):
    # Four clients keep the four workers busy until the stop; each worker's
    # flush takes 3 s, which the fixed 2 s after nginx's drain cut.
    c = exits_app(containers, fixture_image, EXIT_FLUSH_SECONDS="3", UWSGI_PROCESSES="4")
    workers = c.pids("flaskbox uWSGI worker")
    assert len(workers) == 4, c.processes()
    stopped_under_load(c, workers)


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_a_healthy_worker_runs_its_exit_handlers_when_a_crash_loop_ends_the_pool(containers, fixture_image,
                                                                                  worker_class):
    # Worker 1 serves; every fork after it aborts, until the master gives up
    # (forks.SpawnGuard). The master's exit used to kill worker 1 with it.
    c = containers.run(image=fixture_image["image"], env={
        "APP_MODULE": "forkcrash_later:app", "UWSGI_PROCESSES": "2", "EXIT_FLUSH_SECONDS": "3",
        "WORKER_CLASS": worker_class})
    code = c.wait_exit(timeout=90)
    logs = c.logs()
    assert code != 0 and "none of them started" in logs, logs[-3000:]
    found = re.findall(r"exit handler start pid=(\d+)", logs)
    assert len(found) == 1, logs[-3000:]
    assert ran_to_the_end(logs, found[0]), logs[-3000:]
    assert not [claim for claim in BUDGET_CLAIMS if claim in logs], logs[-3000:]
