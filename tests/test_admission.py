"""ADAPTIVE_THREADS in process (request/admission.py): what a window's figures
decide, how uWSGI's stop pipe is told from the pipes Python makes, and a
thread over the limit parked in the after-request hook until the limit is
raised or the worker stops. The containers' proof: test_adaptive_threads.py."""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time

import pytest

from flaskbox.layout import Generation
from flaskbox.request import admission, cpu_meter, gate_rule, stop_pipe
from flaskbox.request.admission import CONTENDED, Admission
from flaskbox.request.cpu_meter import CpuMeter, lock_wait
from flaskbox.request.gate_rule import Decision

FREE, TAKEN = 0.0, 0.8  # the share of a window's probes that found the lock taken
QUEUE = gate_rule.QUEUED * 2
# Seconds the process's threads waited for a CPU for each second they ran:
# none (CPUs to spare), four processes of one request each on two CPUs,
# and twice as many (or two busy loops beside them).
SPARE, EVEN, OVERSUBSCRIBED = 0.1, 1.0, 3.0


def decide(limit: int, taken: float = FREE, cpu_wait: float = SPARE, waited: float = 0.0,
           full: bool = False, threads: int = 16, computes: bool = True, free_before: bool = True,
           held_long: bool = False) -> int:
    return Decision(taken, cpu_wait, waited, full, limit, threads, held_long, free_before, computes).limit


def test_a_taken_lock_halves_the_limit_down_to_one():
    assert [decide(n, taken=TAKEN, waited=QUEUE) for n in (16, 12, 3, 2, 1)] == [8, 6, 1, 1, 1]
    # Taken in every probe: a quarter.
    assert [decide(n, taken=1.0) for n in (16, 4, 3)] == [4, 1, 1]
    # By requests of 0.3 ms each (5 ms waits at 64 clients), within their turn: it holds.
    assert decide(16, taken=TAKEN, computes=False) == 16


def test_requests_that_compute_outside_the_lock_are_lowered_for_the_cpus_they_wait_for():
    # A password hash lets the lock go: the lock is free, the CPUs are not.
    assert [decide(n, cpu_wait=OVERSUBSCRIBED, waited=QUEUE) for n in (16, 4, 2, 1)] == [8, 2, 1, 1]
    # Sixteen at once on two CPUs (each waiting seven times as long as it runs): a quarter.
    assert decide(16, cpu_wait=7.0) == 4
    # One request a process on two CPUs for four processes: as many as the CPUs can run; it holds.
    assert decide(1, cpu_wait=EVEN, waited=QUEUE) == 1 and decide(2, cpu_wait=EVEN, waited=QUEUE) == 2


def test_requests_that_hardly_compute_are_never_lowered_for_busy_cpus():
    # 5 ms waits at 64 clients keep the CPUs as busy: every thread is needed.
    assert decide(16, cpu_wait=OVERSUBSCRIBED, computes=False) == 16
    # Another container keeps the CPUs busy while this process's requests wait on I/O: it rises.
    assert decide(4, cpu_wait=OVERSUBSCRIBED, waited=QUEUE, computes=False) == 16


def test_requests_that_waited_for_a_worker_raise_it_while_the_lock_and_the_cpus_have_room():
    assert [decide(n, waited=QUEUE) for n in (1, 2, 6, 12, 16)] == [2, 4, 12, 16, 16]
    # Requests that hardly compute: fourfold, 1 to 16 in two windows.
    assert [decide(n, waited=QUEUE, computes=False) for n in (1, 4, 8)] == [4, 16, 16]
    # Taken in some probes, free in most: it holds.
    assert decide(4, taken=0.3, waited=QUEUE) == 4
    # Free in one window after one it was taken in (a password hash lets the lock go): it holds.
    assert decide(1, waited=QUEUE, free_before=False) == 1
    # Requests that compute whose threads already wait for a CPU: it holds.
    assert decide(2, waited=QUEUE, cpu_wait=EVEN) == 2


def test_every_thread_let_in_held_by_a_stream_doubles_it_though_no_request_could_arrive():
    # One thread let in, holding an event stream: nothing reaches the worker to say it waited.
    assert decide(1, full=True) == 2
    assert decide(1, full=True, taken=TAKEN) == 1


def test_every_thread_let_in_held_by_a_long_request_doubles_it_lock_taken_or_not():
    # Two exports of ten seconds computing in a process: a quick page must not wait behind them.
    assert decide(1, taken=TAKEN, cpu_wait=OVERSUBSCRIBED, waited=QUEUE, full=True, held_long=True) == 2


def test_it_holds_without_a_queue_and_never_leaves_its_bounds():
    assert decide(5) == 5
    assert decide(5, waited=gate_rule.QUEUED / 2) == 5
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
    gate = Admission(4, known, None, Generation(tmp_path))
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
    gate = Admission(4, frozenset(stop_pipe.open_pipes().values()), None)
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

    # The decisions, not the share of probes: threads waiting on I/O never
    # lower the limit, one spinning in Python does. (A loaded machine moves
    # the shares: beside two busy loops the spinning thread's was 0.65.)
    assert decide(16, taken=probed(io, 4)) == 16
    assert decide(16, taken=probed(spin, 1)) <= 8


@pytest.mark.timed
def test_threads_computing_outside_the_lock_on_too_few_cpus_are_seen_waiting_for_one():
    # A password hash (PBKDF2 in OpenSSL) lets the lock go: three threads a
    # CPU computing it wait for a CPU twice as long as they run, and more
    # beside a neighbour's load. What the gate then decides: halve.
    import hashlib

    meter = CpuMeter(None)
    stop = threading.Event()

    def hash_passwords():
        while not stop.is_set():
            hashlib.pbkdf2_hmac("sha256", b"correct horse", b"salt", 20_000)

    workers = [threading.Thread(target=hash_passwords, daemon=True)
               for _ in range(3 * len(os.sched_getaffinity(0)))]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        ran, waited = meter.read()
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert ran > 0.5, ran
    assert decide(4, cpu_wait=waited / ran) < 4, (ran, waited)


def test_two_seconds_with_no_request_let_every_parked_thread_go_and_say_so(gate, tmp_path):
    gate, _ = gate
    gate.set_limit(2)
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 2, "two parked, one back to uWSGI")
    for _ in range(admission.IDLE_WINDOWS - 1):  # a moment with no request: a burst may follow
        gate.since -= admission.WINDOW
        gate.tick(time.monotonic())
    assert gate.parked == 2 and gate.limit == 2
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == "2 2\n"  # said at each window
    gate.since -= admission.WINDOW
    gate.tick(time.monotonic())
    until(lambda: gate.parked == 0, "every parked thread let go")
    # Every thread in uWSGI's hands, the limit where a new worker's starts:
    # the next load is measured afresh.
    assert gate.limit == admission.START and not any(thread.is_alive() for thread in threads)
    gate.since -= admission.WINDOW
    gate.tick(time.monotonic())  # said at each window, as it is then
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == f"{admission.START} 0\n"


class Held:
    """A request on a thread of its own: let in by the gate, it computes
    (or, `waits`, waits for an event; `hashes`, computes outside Python's
    lock) until told to end, then uWSGI's after-request hook."""

    def __init__(self, gate: Admission, name: str, order: list[str], waited: float = 0.0,
                 limit: float = 30.0, waits: bool = False, hashes: bool = False):
        self.gate, self.name, self.order = gate, name, order
        self.waited, self.limit, self.waits, self.let_in = waited, limit, waits, None
        self.hashes = hashes
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        self.let_in = self.gate.enter(self.waited, self.limit, lambda: 0.0)
        if self.let_in is None:
            return
        self.order.append(self.name)
        deadline = time.monotonic() + 30
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.waits:
                self.done.wait(0.05)
            elif self.hashes:  # a password check: OpenSSL's, the lock let go
                hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 20_000)
            else:
                sum(range(2000))  # a page that computes
        self.gate.after_request()


def test_requests_over_the_limit_wait_for_a_place_in_the_order_they_came(gate):
    gate, _ = gate
    order: list[str] = []
    first = Held(gate, "first", order)  # a new worker's limit: one
    until(lambda: order == ["first"], "the first let in")
    second = Held(gate, "second", order)
    until(lambda: len(gate.waiting) == 1, "the second waiting")
    third = Held(gate, "third", order)
    until(lambda: len(gate.waiting) == 2, "the third waiting")
    first.done.set()
    until(lambda: order == ["first", "second"], "the second let in")
    second.done.set()
    until(lambda: order == ["first", "second", "third"], "the third let in")
    third.done.set()
    assert second.let_in > 0 and third.let_in > 0  # each waited for its place


def test_a_raised_limit_lets_waiting_requests_in_and_a_stop_keeps_their_turns(gate):
    gate, _ = gate
    order: list[str] = []
    held = [Held(gate, str(number), order) for number in range(4)]
    until(lambda: len(order) == 1 and len(gate.waiting) == 3, "one let in, three waiting")
    gate.set_limit(3)
    until(lambda: len(order) == 3 and len(gate.waiting) == 1, "two more let in")
    # uWSGI stops the worker: the last runs once a place is free, not at
    # once beside the others (all past their deadline together).
    gate.stop()
    time.sleep(0.2)
    assert len(order) == 3 and len(gate.waiting) == 1
    held[0].done.set()
    until(lambda: len(order) == 4, "the last let in")
    for request in held:
        request.done.set()


def test_requests_that_only_wait_let_the_next_one_in_at_once(gate):
    # Event streams, long polls, a slow client: nothing computes, so a page
    # beside them does not wait for the next window.
    gate, _ = gate
    order: list[str] = []
    held = [Held(gate, "stream", order, waits=True)]
    until(lambda: order == ["stream"], "the stream let in")
    began = time.monotonic()
    held.append(Held(gate, "page", order, waits=True))
    until(lambda: order == ["stream", "page"], "the page let in", within=admission.WINDOW)
    assert time.monotonic() - began < admission.WINDOW and gate.limit == 2
    for request in held:
        request.done.set()


def test_a_login_starved_of_cpu_is_not_taken_for_a_request_that_waits(gate, monkeypatch):
    # A neighbour's burst leaves the login's thread a few percent of a CPU:
    # its CPU share alone says "waits" (ran reports none), but it is ready
    # to run, so the page behind it waits for a place.
    gate, _ = gate
    monkeypatch.setattr(admission, "ran", lambda tid: 0.0)
    order: list[str] = []
    login = Held(gate, "login", order, hashes=True)
    until(lambda: order == ["login"], "the login let in")
    page = Held(gate, "page", order)
    until(lambda: len(gate.waiting) == 1, "the page waiting")
    # Many rechecks' worth: the login's thread is seen running each time.
    time.sleep(admission.WINDOW / 2)
    assert order == ["login"] and gate.limit == 1
    login.done.set()
    until(lambda: order == ["login", "page"], "the page let in once the login ended")
    page.done.set()


def test_a_request_that_could_no_longer_start_in_time_is_not_let_in(gate):
    gate, _ = gate
    order: list[str] = []
    holder = Held(gate, "holder", order)
    until(lambda: order == ["holder"], "the place taken")
    # It waited 29.8 s of REQUEST_TIMEOUT's 30 for a worker: 0.2 s left to get a place.
    began = time.monotonic()
    late = Held(gate, "late", order, waited=29.8)
    late.thread.join(10)
    assert late.let_in is None and order == ["holder"] and time.monotonic() - began < 5
    holder.done.set()


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
    assert abs(cpu_meter.thread_cpu(threading.get_native_id()) - time.thread_time()) <= 2 / cpu_meter.TICK
    assert cpu_meter.thread_cpu(2 ** 30) == 0.0
