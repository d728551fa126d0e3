"""ADAPTIVE_THREADS in process (pool/admission.py): what a window's figures
decide, how uWSGI's stop pipe is told from the pipes Python makes, and a
thread over the limit parked in the after-request hook until the limit is
raised or the worker stops. The containers' proof: test_adaptive_threads.py."""

from __future__ import annotations

import ctypes
import os
import threading
import time

import pytest

from flaskbox.layout import Generation
from flaskbox.pool import admission, stop_pipe
from flaskbox.pool.admission import CONTENDED, Admission, Decision, lock_wait

FREE, TAKEN = 0.0, 0.8  # the share of a window's probes that found the lock taken
IDLE_CPUS, QUEUE = 0.3, admission.QUEUED * 2


def decide(limit: int, taken: float = FREE, cpus_busy: float = IDLE_CPUS, own: float = 0.1,
           waited: float = 0.0, full: bool = False, share: float = 0.5, threads: int = 16,
           computes: bool = True) -> int:
    return Decision(taken, cpus_busy, own, share, waited, full, limit, threads, computes=computes).limit


def test_a_taken_lock_halves_the_limit_down_to_one():
    assert [decide(n, taken=TAKEN, waited=QUEUE) for n in (16, 12, 3, 2, 1)] == [8, 6, 1, 1, 1]
    # Taken in every probe: a quarter.
    assert [decide(n, taken=1.0) for n in (16, 4, 3)] == [4, 1, 1]
    # By requests of 0.3 ms each (5 ms waits at 64 clients), within their turn: it holds.
    assert decide(16, taken=TAKEN, computes=False) == 16


def test_saturated_cpus_hold_it_from_rising_only_where_this_process_has_its_share():
    # Another container (or a busy loop) keeps the CPUs busy, this process waits on I/O: it doubles.
    assert decide(8, cpus_busy=1.0, own=0.1, waited=QUEUE) == 16
    # Four processes on two CPUs, each with its half, the lock free (a password hash lets it go): it holds.
    assert decide(1, cpus_busy=0.97, own=0.45, waited=QUEUE) == 1
    # ...and is not lowered for it: 5 ms waits at 64 clients keep the CPUs as busy.
    assert decide(16, cpus_busy=0.97, own=0.45) == 16
    assert Decision(0.3, 0.97, 0.45, 0.5, 0.0, False, 16, 16, computes=False).limit == 16
    # Requests that each compute for milliseconds, taking the lock now and then: halved.
    assert Decision(0.3, 0.97, 0.45, 0.5, 0.0, False, 2, 16, computes=True).limit == 1
    assert Decision(0.3, 0.5, 0.45, 0.5, 0.0, False, 2, 16, computes=True).limit == 2  # CPUs with room


def test_requests_that_waited_for_a_worker_double_it_while_the_lock_is_free():
    assert [decide(n, waited=QUEUE) for n in (1, 2, 6, 12, 16)] == [2, 4, 12, 16, 16]
    # Taken in some probes, free in most: it holds.
    assert decide(4, taken=0.3, waited=QUEUE) == 4
    # Free in one window after one it was taken in (a password hash lets the lock go): it holds.
    assert Decision(FREE, IDLE_CPUS, 0.1, 0.5, QUEUE, False, 1, 16, free_before=False).limit == 1


def test_every_thread_let_in_held_by_a_stream_doubles_it_though_no_request_could_arrive():
    # One thread let in, holding an event stream: nothing reaches the worker to say it waited.
    assert decide(1, full=True) == 2
    assert decide(1, full=True, taken=TAKEN) == 1


def test_every_thread_let_in_held_by_a_long_request_doubles_it_lock_taken_or_not():
    # Two exports of ten seconds computing in a process: a quick page must not wait behind them.
    assert Decision(TAKEN, 1.0, 0.5, 0.5, QUEUE, True, 1, 16, held_long=True).limit == 2


def test_it_holds_without_a_queue_and_never_leaves_its_bounds():
    assert decide(5) == 5
    assert decide(5, waited=admission.QUEUED / 2) == 5
    assert decide(3, waited=QUEUE, threads=3) == 3


def c_pipe() -> tuple[int, int]:
    """A pipe as uWSGI makes it, with C's pipe(): no O_CLOEXEC."""
    fds = (ctypes.c_int * 2)()
    assert ctypes.CDLL(None, use_errno=True).pipe(fds) == 0
    return fds[0], fds[1]


def test_the_stop_pipe_is_the_one_new_pipe_c_made():
    known = frozenset(stop_pipe.open_pipes().values())
    python_made = os.pipe()
    r, w = c_pipe()
    try:
        assert stop_pipe.stop_pipe(known) == r
        another = c_pipe()
        # Two candidates: none is sure, so the worker keeps all its threads.
        assert stop_pipe.stop_pipe(known) is None
        for fd in another:
            os.close(fd)
    finally:
        for fd in (*python_made, r, w):
            os.close(fd)


@pytest.fixture
def gate(tmp_path):
    """A worker's gate of 4 threads, its stop pipe a C pipe of this process."""
    known = frozenset(stop_pipe.open_pipes().values())
    r, w = c_pipe()
    gate = Admission(4, known, None, 0.5, Generation(tmp_path))
    gate.started()
    assert gate.stop_fd == r
    yield gate, w
    gate.stop()  # what a test left parked goes before its pipes close
    until(lambda: gate.parked == 0, "the parked threads gone")
    for fd in (r, gate.wake_r, gate.wake_w):
        os.close(fd)
    try:
        os.close(w)
    except OSError:
        pass


def finish_requests(gate: Admission, count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=gate.after_request, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def until(predicate, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not {what} within {within} s"
        time.sleep(0.01)


def test_threads_over_the_limit_park_and_a_raised_limit_lets_some_go(gate):
    gate, _ = gate
    gate.limit = 1
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 3, "three parked")
    # A fourth thread is within the limit (4 threads, 3 parked): it goes on.
    lone = finish_requests(gate, 1)[0]
    lone.join(5)
    assert not lone.is_alive() and gate.parked == 3
    gate.unpark(2)
    until(lambda: gate.parked == 1, "two of three let go")
    assert sum(thread.is_alive() for thread in threads) == 1


def test_uwsgis_stop_lets_every_parked_thread_go(gate):
    gate, stop_w = gate
    gate.limit = 1
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 3, "three parked")
    os.close(stop_w)  # uWSGI's graceful stop of the worker (gracefully_kill)
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads) and gate.stopping
    # Once stopping, no thread parks again.
    finish_requests(gate, 3)[0].join(5)
    assert gate.parked == 0


def test_a_worker_without_a_sure_stop_pipe_never_parks():
    gate = Admission(4, frozenset(stop_pipe.open_pipes().values()), None, 0.5)
    gate.started()  # no new pipe of C's here
    assert gate.stop_fd is None
    gate.limit = 1
    threads = finish_requests(gate, 3)
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads) and gate.parked == 0


@pytest.mark.timed
def test_the_probe_tells_a_lock_taken_to_compute_from_one_free_while_requests_wait():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    def io():
        while not stop.is_set():
            time.sleep(0.02)

    def probed(target, count: int) -> float:
        workers = [threading.Thread(target=target, daemon=True) for _ in range(count)]
        for worker in workers:
            worker.start()
        try:
            return sum(lock_wait() >= CONTENDED for _ in range(20) if not time.sleep(0.01)) / 20
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            stop.clear()

    # Either side of the lines a decision draws (TAKEN_MOST, FREE_MOST), with
    # room for a loaded machine, whose CPUs may take a thread holding the lock.
    assert probed(io, 4) <= 0.3
    assert probed(spin, 1) >= 0.7


def test_two_seconds_with_no_request_let_every_parked_thread_go_and_say_so(gate, tmp_path):
    gate, _ = gate
    gate.limit = 1
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 3, "three parked")
    gate.reached(1, 0.0)  # a request in the window, holding the one thread let in: not idle
    gate.since -= admission.WINDOW
    gate.tick(time.monotonic())
    until(lambda: gate.parked == 2, "the limit doubled")
    del gate.inside[1]
    gate.set_limit(1)
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == "1 2\n"
    for _ in range(admission.IDLE_WINDOWS - 1):  # a moment with no request: a burst may follow
        gate.since -= admission.WINDOW
        gate.tick(time.monotonic())
    assert gate.parked == 2 and gate.limit == 1
    gate.since -= admission.WINDOW
    gate.tick(time.monotonic())
    until(lambda: gate.parked == 0, "every parked thread let go")
    assert gate.limit == 4 and not any(thread.is_alive() for thread in threads)
    gate.since -= admission.WINDOW
    gate.tick(time.monotonic())  # said at each window, as it is then
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == "4 0\n"


def test_a_raised_limit_wakes_as_many_as_it_lets_in(gate):
    gate, _ = gate
    gate.limit = 1
    finish_requests(gate, 3)
    until(lambda: gate.parked == 3, "three parked")
    gate.set_limit(2)  # 1 thread running, 3 parked: one more may run
    until(lambda: gate.parked == 2, "one let go")
    time.sleep(0.1)
    assert gate.parked == 2


def test_a_gate_that_fails_lets_every_thread_go_and_leaves_the_watchdog_be(gate):
    gate, _ = gate
    gate.limit = 1
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 3, "three parked")
    gate.meter = None  # what a broken /proc would make of it
    gate.arrived = 1
    gate.since -= admission.WINDOW
    assert gate.tick(time.monotonic()) is None
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads) and gate.since is None
    finish_requests(gate, 2)[0].join(5)
    assert gate.parked == 0


def test_a_threads_cpu_is_read_as_its_own_clock_says():
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass
    # /proc counts in clock ticks (10 ms): the two agree within two of them.
    assert abs(admission.thread_cpu(threading.get_native_id()) - time.thread_time()) <= 2 / admission.TICK
    assert admission.thread_cpu(2 ** 30) == 0.0
