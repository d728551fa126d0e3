"""Deaths, in process (tests/arbiter_fakes.py): a helper comes back; a dead
nginx or serving uWSGI master ends the container within 2 s, non-zero,
once nginx has answered what it could, with the last line naming what died
and, where the kernel's count says so, the OOM killer (the container tests:
test_supervision.py, test_oom_victims.py)."""

from __future__ import annotations

import os
import signal

import pytest

from arbiter_fakes import FakeSystem, lines, serving_with_a_relay
from flaskbox.arbiter.loop import Child
from flaskbox.arbiter.stop import death


def serving(tmp_path, env=None) -> FakeSystem:
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter(env)
    system.run_until(lambda: arbiter.serving)
    return system


@pytest.mark.parametrize("command, name", [("metrics", "metrics server"),
                                           ("tls-watch", "certificate watcher")])
def test_a_helper_that_dies_comes_back_a_second_later(tmp_path, capsys, command, name):
    from helpers import make_pair

    make_pair(tmp_path)
    system = serving(tmp_path, {"METRICS_PORT": "9100", "TLS_CERT": str(tmp_path / "tls.crt"),
                                "TLS_KEY": str(tmp_path / "tls.key"), "TLS_PORT": "8443"})
    [helper] = system.named(f"python3 -I -m flaskbox {command}")
    killed = system.clock
    system.kill(helper.pid, signal.SIGKILL)
    back = system.run_until(lambda: system.named(f"python3 -I -m flaskbox {command}"))
    assert 1 <= back - killed < 1.1
    assert f"flaskbox: error: the {name} exited with code 137; starting it again" in lines(capsys)
    assert system.the_arbiter.exit_code is None


def test_the_json_log_relay_comes_back_at_once(tmp_path, capsys):
    with serving_with_a_relay(tmp_path) as (system, relay, descriptors):
        killed = system.clock
        system.kill(relay.pid, signal.SIGKILL)
        back = system.run_until(lambda: system.named("python3 -I -m flaskbox json-log"))
        assert back - killed < 0.1
        assert "flaskbox: error: the JSON log relay exited with code 137; started again" in lines(capsys)
        # Only the relay has them: a writer of its own pipe would keep it from its end.
        assert not any(os.get_inheritable(fd) for fd in descriptors)


def test_a_dead_uwsgi_master_ends_the_container_within_2_s(tmp_path, capsys):
    system = serving(tmp_path)
    lines(capsys)
    master = system.master(1)
    workers = master.workers
    master.children = []  # its workers outlive it for a moment (PID 1 adopts them)
    killed = system.clock
    system.kill(master.pid, signal.SIGKILL)
    assert system.run_to_exit() == 137
    assert system.clock - killed < 2
    out = lines(capsys)
    assert out[0] == ("flaskbox: error: uWSGI's master was killed by signal 9; stopping the container (nginx "
                      "answers what it can and writes its log)")
    assert out[-1] == "flaskbox: error: container stopped: uWSGI's master was killed by signal 9"
    # Its workers killed at once, so that nginx answers their requests (502)
    # and logs them; then nginx drained.
    assert all(worker.signals[0][1] == "SIGKILL" for worker in workers)
    assert system.nginx().signals[0][1] == "SIGQUIT"


def test_a_dead_nginx_master_drains_the_workers_it_left(tmp_path, capsys):
    system = serving(tmp_path)
    nginx = system.nginx()
    for worker in nginx.workers:
        worker.signalled = lambda number, worker=worker: (worker.exit(0, lag=0.2)
                                                          if number == signal.SIGQUIT else None)
    killed = system.clock
    system.kill(nginx.pid, signal.SIGKILL)
    assert system.run_to_exit() == 137
    assert system.clock - killed < 2
    assert all(worker.signals[0][1] == "SIGQUIT" and worker.status == 0 for worker in nginx.workers)
    assert lines(capsys)[-1] == "flaskbox: error: container stopped: nginx's master was killed by signal 9"


def test_workers_that_do_not_drain_are_killed_in_time(tmp_path):
    system = serving(tmp_path)
    nginx = system.nginx()
    for worker in nginx.workers:
        worker.signalled = lambda number: None  # deaf to QUIT and TERM
    killed = system.clock
    system.kill(nginx.pid, signal.SIGKILL)
    assert system.run_to_exit() == 137
    assert system.clock - killed < 2
    assert [name for _, name in nginx.workers[0].signals] == ["SIGQUIT", "SIGTERM", "SIGKILL"]


def test_in_an_abort_uwsgis_workers_are_killed_before_their_master(tmp_path, capsys):
    # nginx died; uWSGI's master is slow to stop, a worker stuck in a request.
    system = serving(tmp_path)
    master = system.master(1)
    master.script.stops_after = None
    stuck = master.request(float("inf"))
    system.kill(system.nginx().pid, signal.SIGKILL)
    assert system.run_to_exit() == 137
    killed_master = [at for at, name in master.signals if name == "SIGKILL"]
    killed_stuck = [at for at, name in stuck.signals if name == "SIGKILL"]
    # The mercy deadline before the kill: the stuck worker is named and killed, not left to its master.
    assert killed_stuck and killed_master and killed_stuck[0] < killed_master[0], (stuck.signals,
                                                                                  master.signals)
    assert (f"flaskbox: error: uWSGI worker(s) {stuck.pid} still in a request past their budget; killing "
            "them (their requests are cut)") in " ".join(lines(capsys))


def test_a_master_that_exits_with_an_error_is_the_exit_code(tmp_path, capsys):
    system = serving(tmp_path)
    system.master(1).exit(3)  # forks.SpawnGuard: a pool that cannot stay up
    assert system.run_to_exit() == 3
    assert lines(capsys)[-1] == "flaskbox: error: container stopped: uWSGI's master exited with code 3"


def test_the_oom_killer_is_named_when_its_count_rose(tmp_path, capsys):
    system = serving(tmp_path)
    system.oom = int(system.record.derived["OOM_KILLS"]) + 1
    system.kill(system.master(1).pid, signal.SIGKILL)
    assert system.run_to_exit() == 137
    assert lines(capsys)[-1] == ("flaskbox: error: container stopped: uWSGI's master was killed by signal 9, "
                                 "by the kernel's OOM killer (the container's memory limit)")


@pytest.mark.parametrize("status, before, now, said", [
    (1, 0, 0, "x exited with code 1"),
    (137, 0, 0, "x was killed by signal 9"),
    (137, 2, 3, "x was killed by signal 9, by the kernel's OOM killer (the container's memory limit)"),
    (137, 2, None, "x was killed by signal 9"),
    (139, 0, 1, "x was killed by signal 11"),  # only SIGKILL is the OOM killer's
])
def test_a_death_is_said_as_it_was(status, before, now, said):
    child = Child("x", 1, lambda child: None)
    child.status = status
    assert death("x", child, before, now) == said
