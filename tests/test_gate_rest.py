"""A worker at rest (ADAPTIVE_THREADS, issue 69): it lets in one request
at once, that request still waits for a CPU, and the pool's other workers
let in as many as the container has CPUs; so it takes none until a quiet
spell sets it back at one (request/gate_rule.py, request/admission.py).
Four processes of one login each, on the one CPU a busy host left them,
each took four times its CPU to answer, and those let in near their
deadline passed it. The rule's figures: test_gate_rule.py; beside two busy
loops, in a container: test_overload_goodput.py."""

from __future__ import annotations

import contextlib
import subprocess
import threading

import pytest
from gates import finish_requests, idle_windows, started_gate, until

from flaskbox.request import admission

CPUS = 2


@contextlib.contextmanager
def other_workers(count: int):
    """Live processes standing for the pool's other workers (a gate-PID of
    a process gone counts for nothing)."""
    others = [subprocess.Popen(["sleep", "60"]) for _ in range(count)]
    try:
        yield [other.pid for other in others]
    finally:
        for other in others:
            other.kill()
            other.wait()


def say(folder, pid: int, limit: int) -> None:
    (folder / f"gate-{pid}").write_text(f"{limit} 15\n")


@pytest.fixture
def covered(tmp_path):
    """A started gate whose pool's two other workers let in one each, as
    many as the CPUs; and the second of them, whose word a test changes."""
    with started_gate(tmp_path, cpus=CPUS) as (gate, _), other_workers(2) as (first, second):
        say(tmp_path, first, 1)
        say(tmp_path, second, 1)
        yield gate, second


def test_a_worker_rests_only_while_the_others_let_in_as_many_as_the_cpus(tmp_path):
    with started_gate(tmp_path, cpus=CPUS) as (gate, _), other_workers(2) as (first, second):
        gone = subprocess.Popen(["true"])
        gone.wait()
        say(tmp_path, first, 1)
        say(tmp_path, gone.pid, 4)
        assert not gate.rests() and gate.limit == 1
        say(tmp_path, second, 1)
        assert gate.rests() and gate.limit == 0
        assert (tmp_path / f"gate-{gate.pid}").read_text() == "0 0\n"  # what the others read


def test_a_worker_with_requests_in_its_line_does_not_rest(covered):
    # A new worker's first load: each of its threads took a request before
    # any parked; at rest, they would wait there one at a time while other
    # workers had room.
    gate, _ = covered
    gate.cpus_busy = True  # logins waiting for a CPU: nothing lets the line in over the limit
    running = threading.Event()

    def take(limit: float) -> None:
        gate.enter(0.0, limit, lambda: 0.0)
        running.set()
    threading.Thread(target=take, args=(30.0,), daemon=True).start()
    until(running.is_set, "one let in")
    behind = threading.Thread(target=take, args=(5.0,), daemon=True)
    behind.start()
    until(lambda: gate.waiting, "one in the worker's line")
    assert not gate.rests() and gate.limit == 1
    gate.set_limit(2)  # the line let in: now it may
    until(lambda: not gate.waiting, "the line empty")
    assert gate.rests() and gate.limit == 0


def test_two_workers_never_both_rest_on_one_reading(covered, tmp_path):
    gate, second = covered
    rested = []
    with gate.generation.gates_locked():  # another worker deciding
        deciding = threading.Thread(target=lambda: rested.append(gate.rests()), daemon=True)
        deciding.start()
        deciding.join(0.3)
        assert deciding.is_alive() and gate.limit == 1  # it waits for that worker's word
        say(tmp_path, second, 0)  # which was: it rests
    deciding.join(10)
    assert rested == [False] and gate.limit == 1


def test_at_rest_what_its_threads_took_runs_one_at_a_time_then_they_park_until_a_quiet_spell(covered):
    gate, _ = covered
    assert gate.rests()
    gate.cpus_busy = True  # as the window that let it rest found: logins waiting for a CPU
    answered, entered = threading.Event(), threading.Event()

    def taken_before_it_parked() -> None:
        gate.enter(0.0, 30.0, lambda: 0.0)
        entered.set()
        answered.wait(10)
        gate.after_request()
    running = threading.Thread(target=taken_before_it_parked, daemon=True)
    running.start()
    until(entered.is_set, "the request its thread took let in at once")
    refused = []
    behind = threading.Thread(target=lambda: refused.append(gate.enter(0.0, 0.3, lambda: 0.0)))
    behind.start()
    behind.join(10)
    assert refused == [None]  # one at a time: the second waited for a place until its time ran out
    answered.set()
    finish_requests(gate, 3)
    until(lambda: gate.parked == 4, "every thread parked: the worker takes no request")
    idle_windows(gate, 1)  # the window its request ran in: the others still cover the CPUs
    assert gate.limit == 0
    idle_windows(gate, admission.IDLE_WINDOWS - 1)
    assert gate.limit == 0
    idle_windows(gate, 1)
    assert gate.limit == admission.START
    until(lambda: gate.parked == 3, "one thread woken to take the next request")


def test_a_worker_at_rest_takes_requests_again_once_the_others_no_longer_cover_the_cpus(covered, tmp_path):
    gate, second = covered
    assert gate.rests()
    say(tmp_path, second, 0)  # it rests too, or it was retired
    gate.enter(0.0, 30.0, lambda: 0.0)  # a request its thread took before it parked
    idle_windows(gate, 1)
    assert gate.limit == 1
