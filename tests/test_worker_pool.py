"""uWSGI's worker pool on every base: the app's os.register_at_fork hooks run
in every worker (py-call-osafterfork killed every worker at fork on Python
3.13+), and every worker starts with what the master imported frozen out of
the garbage collector's reach; an app that forks processes of its own keeps
its worker, and the processes it starts take signals as under plain
Python (a pool child ends on SIGTERM); a pool whose workers die as they start stops the container fast
with the reason in its log, and a worker crashing now and then is simply
replaced."""

import concurrent.futures
import time

import pytest


def every_worker(container, workers: int, timeout: float = 60) -> dict[int, dict]:
    """One /forked answer from each of `workers` worker processes: rounds of
    concurrent requests, each held 0.3 s, until every worker has taken one.
    Until `timeout`: "serving" comes once one worker accepts, and on a busy
    machine the last to start took more than ten rounds (3 s) to get there."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(workers * 2) as pool:
        while time.monotonic() < deadline:
            for resp in pool.map(lambda _: container.request("/forked?wait=0.3").json(), range(workers * 2)):
                seen[resp["pid"]] = resp
            if len(seen) >= workers:
                return seen
    now = container.pids("flaskbox uWSGI worker")
    raise AssertionError(f"only {len(seen)} of {workers} workers answered within {timeout:.0f} s: "
                         f"{list(seen)}; workers now: {now}\n{container.logs()}")


def test_at_fork_hooks_run_in_every_worker(containers, fixture_image, figure):
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "4"})
    seen = every_worker(c, 4)
    # The app's after_in_child hook ran once in each worker, in that worker...
    assert all(answer["hooked"] == pid and answer["hooks"] == 1 for pid, answer in seen.items()), seen
    # ...and Python's own hooks reseeded random in each.
    assert len({answer["random"] for answer in seen.values()}) == 4
    # A recycled worker (a later fork) gets them too.
    c.signal("KILL", str(next(iter(seen))))
    c.wait_until(lambda: len(c.pids("flaskbox uWSGI worker")) == 4 and next(iter(seen)) not in
                 [int(p) for p in c.pids("flaskbox uWSGI worker")], "the worker to be replaced")
    again = every_worker(c, 4)
    assert all(answer["hooked"] == pid for pid, answer in again.items()), again
    figure("at-fork hooks: workers checked, each hooked once", f"{len(seen)} + {len(again)} after a respawn")
    # What the master imported (Flask, the app: tens of thousands of
    # objects) is frozen in every worker, the respawned one too, so that a
    # full collection there neither walks it nor copies its pages.
    frozen = [answer["frozen"] for answer in [*seen.values(), *again.values()]]
    assert min(frozen) > 5000, frozen
    figure("objects frozen in each worker at its fork", f"{min(frozen)} to {max(frozen)}")


def test_an_app_that_forks_keeps_its_worker(containers, fixture_image, figure):
    # One worker: its master gives up after 3 forks in a row of workers that
    # never start, and each request forks 2 processes of the app's own.
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "1"})
    answers = [c.request("/forked?forks=2") for _ in range(8)]
    assert [r.status for r in answers] == [200] * 8, c.logs()[-3000:]
    bodies = [r.json() for r in answers]
    # The same worker answered every time: none was ended under its request.
    assert len({body["pid"] for body in bodies}) == 1, bodies
    # The app's own forks froze nothing more of the worker's (what was
    # frozen may shrink as the app frees it): its garbage is still collected.
    assert all(body["frozen_after"] <= body["frozen"] for body in bodies), bodies
    assert "giving up" not in c.logs()
    figure("requests that forked 2 processes each, answered by one worker", f"{len(bodies)} of 8")


def test_the_apps_own_processes_take_signals_as_under_plain_python(containers, fixture_image, figure):
    # uWSGI blocks every signal in its request threads but the first, and a
    # process inherits its thread's mask: a pool child that ignored SIGTERM
    # hung `with multiprocessing.Pool()` now and then. Concurrent requests,
    # until some were served by such a thread.
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "1"})
    answers = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            answers += pool.map(lambda _: c.request("/children", timeout=30), range(8))
            if any(r.status == 200 and r.json()["thread"] for r in answers):
                break
    assert [r.status for r in answers] == [200] * len(answers), c.logs()[-3000:]
    bodies = [r.json() for r in answers]
    from_blocking_threads = [body for body in bodies if body["thread"]]
    assert from_blocking_threads, f"no request was served by a thread that blocks signals: {bodies[:2]}"
    for body in bodies:
        assert body["forked"] == {"blocked": [], "term_default": True}, body
        assert body["forked_terminated"] == -15, body
        assert body["program_blocked"] == "[]", body
        assert body["program_terminated"] == -15, body
    figure("requests from threads that block signals whose children took SIGTERM",
           f"{len(from_blocking_threads)} of {len(bodies)}")


def test_a_pool_that_cannot_stay_up_fails_fast(containers, fixture_image, figure):
    # Every worker aborts in an at-fork hook, as it starts.
    started = time.monotonic()
    c = containers.run(image=fixture_image["image"], env={"APP_MODULE": "forkcrash:app"})
    code = c.wait_exit(timeout=30)
    elapsed = time.monotonic() - started
    figure("a pool whose workers all die at start: exit code, seconds", f"{code}, {elapsed:.1f}")
    assert code != 0
    assert elapsed < 30
    logs = c.logs()
    assert "none of them started" in logs and "killed by signal 6" in logs, logs[-3000:]
    assert "serving" not in logs  # nginx never started: nothing was ever served


@pytest.mark.parametrize("signal", ["SEGV", "KILL"])
def test_a_worker_crashing_now_and_then_is_replaced(containers, fixture_image, signal):
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "2"})
    for _ in range(4):
        victim = c.pids("flaskbox uWSGI worker")[0]
        c.signal(signal, victim)
        c.wait_until(lambda v=victim: v not in c.pids("flaskbox uWSGI worker")
                     and len(c.pids("flaskbox uWSGI worker")) == 2, "the worker to be replaced")
        assert c.request("/").status == 200
    assert c.running() and "giving up" not in c.logs()
