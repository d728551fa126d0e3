"""A dead server takes the container down (so a restart policy or orchestrator
replaces it); a dead worker is replaced; PID 1 reaps orphans."""

import time

import pytest

SERVERS = {
    "nginx master": "nginx: master process",
    "uWSGI master": "flaskbox uWSGI master",
}


@pytest.mark.parametrize("server", SERVERS, ids=["nginx", "uwsgi"])
def test_killed_master_stops_the_container_non_zero(containers, server, figure):
    c = containers.serving()
    pids = c.pids(SERVERS[server])
    assert len(pids) == 1, c.processes()
    started = time.monotonic()
    c.signal("KILL", *pids)
    c.wait_exit(timeout=5)
    elapsed = time.monotonic() - started
    figure(f"container exit after kill -9 of the {server}, seconds", f"{elapsed:.2f}")
    assert c.exit_code() != 0, c.logs()
    assert f"{server.split()[0]} exited unexpectedly" in c.logs()


def test_killed_worker_is_replaced_and_service_continues(containers):
    c = containers.serving()
    workers = set(c.pids("flaskbox uWSGI worker"))
    victim = sorted(workers)[0]
    c.signal("KILL", victim)

    def replaced():
        now = set(c.pids("flaskbox uWSGI worker"))
        return len(now) == len(workers) and victim not in now

    c.wait_until(replaced, "a new worker in place of the killed one", timeout=10)
    assert all(c.request("/").status == 200 for _ in range(20))
    assert c.running()


def test_pid1_reaps_orphaned_processes(containers):
    c = containers.serving()
    # A background child outlives the shell that started it: it is re-parented
    # to PID 1, which must collect it when it exits, or it stays a zombie.
    result = c.exec("bash", "-c", "sleep 0.5 & echo $!")
    orphan = result.stdout.strip()
    assert orphan.isdigit(), result.stderr

    def state():
        out = c.exec("bash", "-c", f"awk '/^(State|PPid):/ {{print $2}}' /proc/{orphan}/status 2>/dev/null")
        return out.stdout.split()

    # While it sleeps, its parent is PID 1 (tini).
    assert state() in (["S", "1"], []), state()
    c.wait_until(lambda: state() == [], "the orphan to be reaped (no zombie left)", timeout=5)
