"""An app whose import leaves threads running works unchanged (issue 60).

A fork copies only the forking thread, so the image loads such an app in
each worker instead of once in uWSGI's master (userapp/threads.py,
arbiter/generation.py): the start says which threads it found, where the
Python ones were started, and what it costs. Each test proves that a
worker's request used the thread, with an answer only the thread could
give: an asyncio loop's (SearXNG's network), APScheduler's ticks, and a
Rust runtime's (opendal's, under Dify's storage), which hung every request
of a forked worker. An app that leaves none is still loaded once, in the
master."""

from __future__ import annotations

import re
import time

import pytest

from containers import ContainerFactory
from helpers import docker

pytestmark = pytest.mark.interpreter

FOUND = "the app's import left"
# uWSGI's line for each load of the app: in the master (preloaded) or in
# each worker (lazy-apps), by pid.
LOADED = re.compile(r"WSGI app 0 \(mountpoint=''\) ready in \d+ seconds on interpreter \w+ pid: (\d+)")


@pytest.fixture(scope="module")
def threads_app(app_images):
    factory = ContainerFactory(app_images("threads"))
    yield factory
    factory.cleanup()


def serve(factory, module: str, **env):
    c = factory.run(env={"APP_MODULE": f"{module}:app", "UWSGI_PROCESSES": "2", **env})
    c.wait_http("/pid" if module == "loop_app" else "/", timeout=60)
    return c


def loads(c) -> set[str]:
    return set(LOADED.findall(c.logs()))


def answers(c, path: str = "/", count: int = 6) -> list:
    return [c.request(path, timeout=8) for _ in range(count)]


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_an_asyncio_loop_in_a_thread_answers_in_every_worker(threads_app, worker_class):
    c = serve(threads_app, "loop_app", WORKER_CLASS=worker_class)
    got = answers(c)
    logs = c.logs()
    assert [r.status for r in got] == [200] * 6, logs
    pids = {r.text.rsplit(" ", 1)[1] for r in got}
    assert all(r.text.startswith("loop thread network-loop in pid ") for r in got), got
    # Named, with where the app started it, and what was done. (With gevent
    # it is a greenlet, which the kernel does not see, and a fork leaves
    # it to a hub that never runs it again: 0 answers in 6 before.)
    assert re.search(r'left 1 thread\(s\) running in uWSGI\'s master: "network-loop" \(Python, '
                     r'started at /app/loop_app.py, line 10, in <module>\)\. A fork does not copy '
                     r'threads.*each of the 2 worker\(s\) loads the app itself instead \(lazy-apps\).*'
                     r'costs about \d+ MB a worker', logs), logs
    # Loaded in the workers, the ones that answered among them.
    assert pids <= loads(c) and c.pids("flaskbox uWSGI master")[0] not in loads(c), logs
    assert "Traceback" not in logs, logs


def test_a_background_scheduler_ticks_in_the_worker_that_answers(threads_app):
    c = serve(threads_app, "scheduler_app")
    first = c.request("/").json()
    deadline = time.monotonic() + 10
    later = first
    while later["pid"] != first["pid"] or later["ticks"] <= first["ticks"] + 2:
        assert time.monotonic() < deadline, (first, later, c.logs())
        later = c.request("/").json()
    logs = c.logs()
    assert re.search(r'left \d+ thread\(s\).*\(Python, started at apscheduler/schedulers/background\.py, '
                     r'line \d+, in start, from /app/scheduler_app\.py, line 16, in <module>\)', logs), logs


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_a_rust_runtimes_threads_serve_every_request(threads_app, worker_class):
    # opendal's tokio threads: in a forked worker every call hung (Dify's
    # gevent worker crashed with SIGSEGV in it, 4 starts in 15).
    c = serve(threads_app, "storage_app", WORKER_CLASS=worker_class)
    got = answers(c)
    logs = c.logs()
    assert [r.status for r in got] == [200] * 6, logs
    assert all(re.fullmatch(r"written by pid \d+", r.text) for r in got), got
    assert re.search(r"left \d+ thread\(s\) running in uWSGI's master: \"[^\"]+\" \(native\)", logs), logs
    assert "killed by signal" not in logs and "Traceback" not in logs, logs


def test_a_reload_loads_the_new_code_in_each_worker_at_once(threads_app):
    c = serve(threads_app, "loop_app")
    before = c.request("/pid").text
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the new code",
                 timeout=60)
    deadline = time.monotonic() + 10
    while (answer := c.request("/")).status != 200 or answer.text.endswith(f"pid {before}"):
        assert time.monotonic() < deadline, c.logs()
    assert answer.text.startswith("loop thread network-loop in pid ")
    # The new generation went to each worker at once: the threads were
    # found once, at the start, and the app imported no second time in a
    # master of its own.
    assert c.logs().count(FOUND) == 1, c.logs()


def test_an_app_that_leaves_no_thread_is_loaded_once_in_the_master(threads_app):
    c = serve(threads_app, "plain_app")
    assert c.request("/").status == 200
    logs = c.logs()
    assert FOUND not in logs
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs


def test_a_thread_that_only_waits_for_the_end_keeps_the_app_preloaded(threads_app):
    # python-oracledb 2's close_pools_gracefully, which Redash imports: the
    # app was loaded in each of 4 workers for it, at 124 MB a worker.
    c = serve(threads_app, "closing_app")
    assert c.request("/").text == "pools open: 0"
    logs = c.logs()
    assert ('the app\'s import left 1 thread(s) in uWSGI\'s master that only wait for its end: '
            '"Thread-1 (close_pools_gracefully)" (Python, started at /app/pools.py, line 15, in <module>') \
        in logs, logs
    assert FOUND + " 1 thread(s) running" not in logs and "lazy-apps" not in logs, logs
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs


def test_uwsgi_lazy_apps_false_keeps_preloading_and_says_what_that_means(threads_app):
    c = serve(threads_app, "loop_app", UWSGI_LAZY_APPS="false")
    logs = c.logs()
    assert ("UWSGI_LAZY_APPS=false keeps them in the master, and the workers have them only if the app "
            "starts them again after a fork") in logs, logs
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs


def test_debug_mode_runs_the_threads_beside_the_requests(threads_app):
    # The dev server's reloader starts a new process, which imports the app
    # itself: nothing to find, and the loop answers.
    c = threads_app.run("-d", "debug", env={"APP_MODULE": "loop_app:app"})
    c.wait_http("/", timeout=60)
    assert c.request("/").text.startswith("loop thread network-loop in pid ")
    assert FOUND not in c.logs()
