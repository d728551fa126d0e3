"""WORKER_CLASS=gevent: however a worker ends, the app's exit handlers run
to their end (issue 54), which uWSGI 2.0 itself never does in a gevent
worker (gevent_exit.py): every worker at `docker stop` under load, the old
code's workers at a reload, WORKER_MAX_MEMORY's replacement (LoopWatch) and
max-requests. The fixture app's exits.py prints its handler's start and end
with the pid; the handler sleeps, which under gevent yields to the loop."""

from __future__ import annotations

from test_exit_handlers import (
    BUDGET_CLAIMS,
    FLUSH_END,
    FLUSH_START,
    exits_app,
    flushed,
    ran_to_the_end,
    stopped_under_load,
)

from helpers import docker


def gevent_app(containers, fixture_image, **env: str):
    return exits_app(containers, fixture_image, WORKER_CLASS="gevent", **env)


def test_every_gevent_worker_runs_its_exit_handlers_at_docker_stop_under_load(containers, fixture_image):
    # A flush of 3 s: longer than gevent's 2 s worker-reload-mercy, so only
    # the stop's own budget (what STOP_TIMEOUT leaves) lets it end.
    c = gevent_app(containers, fixture_image, EXIT_FLUSH_SECONDS="3", UWSGI_PROCESSES="2")
    workers = c.pids("flaskbox uWSGI worker")
    assert len(workers) == 2, c.processes()
    stopped_under_load(c, workers)


def test_the_old_codes_gevent_workers_run_their_exit_handlers_at_a_reload(containers, fixture_image):
    c = gevent_app(containers, fixture_image, EXIT_FLUSH_SECONDS="3", UWSGI_PROCESSES="2", RELOAD_GRACE="20")
    old = c.pids("flaskbox uWSGI worker")
    assert len(old) == 2, c.processes()
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "reload: the old code (generation 1) has finished its requests and stopped"
                 in c.logs(), "the old code's end", timeout=60)
    logs = c.logs()
    assert [pid for pid in old if ran_to_the_end(logs, pid)] == old, logs
    assert not [claim for claim in BUDGET_CLAIMS if claim in logs], logs
    assert c.request("/count").status == 200


def test_a_gevent_worker_past_worker_max_memory_runs_its_exit_handlers(containers, fixture_image):
    # The 200 MB are the worker's very first request (no health probe comes
    # before it): the cap must be taken from what the worker held before it
    # (it raced it, and was left unapplied as below a fresh worker).
    c = gevent_app(containers, fixture_image, probed=False, WORKER_MAX_MEMORY="150m", UWSGI_PROCESSES="1")
    pid = str(c.request("/hold/200", timeout=30).json()["pid"])
    assert "not applied" not in c.logs(), c.logs()
    c.wait_until(lambda: "past WORKER_MAX_MEMORY (150 MB)" in c.logs(), "the worker's replacement")
    flushed(c, pid)
    c.wait_until(lambda: c.request("/count").json()["pid"] != int(pid), "a fresh worker serving")


def test_a_gevent_worker_past_its_budget_is_ended_and_the_log_names_it(containers, fixture_image):
    # A flush of 30 s against gevent's worker-reload-mercy (2 s).
    c = gevent_app(containers, fixture_image, WORKER_MAX_MEMORY="150m", UWSGI_PROCESSES="1",
                   EXIT_FLUSH_SECONDS="30")
    pid = str(c.request("/hold/200", timeout=30).json()["pid"])
    ended = f"worker pid {pid}: its requests and the app's exit handlers still ran 2 s"
    c.wait_until(lambda: ended in c.logs(), "the worker's end past its budget", timeout=20)
    logs = c.logs()
    assert "past its budget (uWSGI's worker-reload-mercy: WORKER_RELOAD_MERCY)" in logs, logs
    assert FLUSH_START.format(pid) in logs and FLUSH_END.format(pid) not in logs, logs
    c.wait_until(lambda: c.request("/count").json()["pid"] != int(pid), "a fresh worker serving")


def test_a_gevent_worker_recycled_at_max_requests_runs_its_exit_handlers(containers, fixture_image):
    c = gevent_app(containers, fixture_image, UWSGI_PROCESSES="1", UWSGI_MAX_REQUESTS="20",
                   UWSGI_MAX_REQUESTS_DELTA="0", UWSGI_MIN_WORKER_LIFETIME="1")
    first = c.request("/count").json()["pid"]
    c.wait_until(lambda: c.request("/count").json()["pid"] != first, "the worker's replacement")
    pid = str(first)
    logs = flushed(c, pid)
    assert "BOOOOOOM" not in logs and "NO MERCY" not in logs, logs


def test_a_gevent_worker_recycled_past_its_budget_is_ended_and_the_log_names_it(containers, fixture_image):
    # max-requests' budget is uWSGI's own: worker-reload-mercy (2 s with
    # gevent), its time bomb from the moment the worker stops taking requests.
    c = gevent_app(containers, fixture_image, UWSGI_PROCESSES="1", UWSGI_MAX_REQUESTS="20",
                   UWSGI_MAX_REQUESTS_DELTA="0", UWSGI_MIN_WORKER_LIFETIME="1", EXIT_FLUSH_SECONDS="30")
    first = c.request("/count").json()["pid"]
    c.wait_until(lambda: c.request("/count").json()["pid"] != first, "the worker's replacement")
    logs = c.logs()
    assert "Fire in the hole !!! (2 seconds to detonation)" in logs and "BOOOOOOM" in logs, logs
    assert FLUSH_START.format(first) in logs and FLUSH_END.format(first) not in logs, logs
