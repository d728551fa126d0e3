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
import time

import pytest
from gates import Held, finish_requests, idle_windows, started_gate, until

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
    (folder / f"gate-{pid}").write_text(f"{limit} 1 14\n")


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
        assert (tmp_path / f"gate-{gate.pid}").read_text() == "0 0 0\n"  # what the others read


def test_a_worker_rests_with_one_in_its_line_not_with_more(covered):
    # The one its free thread over the limit took (parking.wanted) runs
    # next, at rest too (refused for it, workers beside three busy loops
    # rested a quarter as often, and logins ran past their deadline). A
    # longer line (threads that took requests before any parked) would wait
    # there one at a time while other workers had room.
    gate, _ = covered
    gate.cpus_busy = True  # logins waiting for a CPU: nothing lets the line in over the limit
    order: list[str] = []
    first = Held(gate, "first", order, hashes=True)
    until(lambda: order == ["first"], "one let in")
    second, third = Held(gate, "second", order), Held(gate, "third", order)
    until(lambda: len(gate.waiting) == 2, "two in the worker's line")
    assert not gate.rests() and gate.limit == 1
    first.done.set()
    until(lambda: order[1:] == ["second"] and len(gate.waiting) == 1, "the first of the line let in")
    assert gate.rests() and gate.limit == 0
    second.done.set()
    until(lambda: order == ["first", "second", "third"], "the one left in the line let in, at rest")
    third.done.set()


class Window:
    """The CPU meter's word on a window: a second of CPU, and twice as long waiting for a CPU."""

    @staticmethod
    def read() -> tuple[float, float]:
        return 1.0, 2.0


@pytest.mark.parametrize("waits", [True, False])
def test_a_worker_with_a_request_inside_that_only_waits_does_not_rest(covered, waits):
    # A stream never ends, and a worker at rest has no thread free: no quiet
    # spell would come to end that rest. (A new worker read the start's
    # first page and one stream as computing, rested, and kept 49 streams waiting.)
    gate, _ = covered
    request = Held(gate, "stream" if waits else "login", [], waits=waits)
    until(lambda: gate.inside, "the request let in")
    if waits:
        until(lambda: all(admission.only_waits(entry, time.monotonic()) for entry in gate.inside.values()),
              "the stream seen waiting")
    gate.meter = Window()
    gate.since -= admission.WINDOW
    decision = gate.tick(time.monotonic())
    assert decision is not None
    assert gate.limit == (1 if waits else 0)
    request.done.set()


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
    # The limit's one and one over it: a request over it reaches the line, that says if it only waits.
    until(lambda: gate.parked == 2, "two threads woken to take the next requests")


def test_a_worker_at_rest_takes_requests_again_once_the_others_no_longer_cover_the_cpus(covered, tmp_path):
    gate, second = covered
    assert gate.rests()
    say(tmp_path, second, 0)  # it rests too, or it was retired
    gate.enter(0.0, 30.0, lambda: 0.0)  # a request its thread took before it parked
    idle_windows(gate, 1)
    assert gate.limit == 1
