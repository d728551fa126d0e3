"""ADAPTIVE_THREADS' gate in process (request/admission.py): how uWSGI's
stop pipe is told from the pipes Python makes, the lock probe and the CPU
meter, requests over the limit waiting for a place, and a thread over the
limit parked in the after-request hook until the limit is raised or the
worker stops. The rule it follows: test_gate_rule.py; the containers'
proof: test_adaptive_threads.py."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest
from gates import Held, c_pipe, finish_requests, idle_windows, started_gate, until

from flaskbox.request import admission, stop_pipe
from flaskbox.request.admission import Admission
from flaskbox.request.request import Request


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
    """A worker's gate of 5 threads, its stop pipe a C pipe of this process."""
    with started_gate(tmp_path, threads=5) as (gate, w):
        yield gate, w


def test_threads_over_the_limit_park_and_a_raised_limit_lets_some_go(gate):
    gate, _ = gate
    gate.limit = 1
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 3, "three parked")
    # A fourth thread is within the limit and the one over it (5 threads, 3 parked): it goes on.
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


def test_two_seconds_with_no_request_set_the_limit_back_and_parked_threads_stay_parked(gate, tmp_path):
    gate, _ = gate
    gate.set_limit(2)
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 2, "two parked, one back to uWSGI (3 free: the limit and one over it)")
    idle_windows(gate, admission.IDLE_WINDOWS - 1)  # a moment with no request: a burst may follow
    assert gate.parked == 2 and gate.limit == 2
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == "2 2 0\n"  # said at each window
    told = []  # how many parked threads each of the gate's calls lets go
    let_go = gate.unpark
    gate.unpark = lambda count: told.append(min(count, gate.parked)) or let_go(count)
    idle_windows(gate, 1)
    # The limit where a new worker's starts (the next load is measured
    # afresh), and only the two threads that took requests still take them:
    # let go, the parked ones would each take one of the next load's into
    # this process's line, behind a limit of one.
    assert gate.limit == admission.START and told and max(told) <= 0
    assert gate.parked == 2 and sum(thread.is_alive() for thread in threads) == 2
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == f"{admission.START} 2 0\n"


def test_a_parked_thread_whose_answer_was_a_5xx_goes_in_a_quiet_spell_and_its_line_with_it(gate, tmp_path):
    gate, _ = gate
    gate.set_limit(1)

    def answered_503() -> None:
        gate.owes_line()  # Request.respond, for a 503
        gate.after_request()
    owing = threading.Thread(target=answered_503, daemon=True)
    owing.start()
    others = finish_requests(gate, 2)
    until(lambda: gate.parked == 3 and gate.owed == 1, "three parked, one owing its line")
    idle_windows(gate, admission.IDLE_WINDOWS)
    # uWSGI writes a 5xx's line once the thread leaves the hook: every
    # parked thread goes, so that none waits for the next load.
    until(lambda: gate.parked == 0, "every parked thread let go")
    assert gate.owed == 0 and not owing.is_alive() and not any(thread.is_alive() for thread in others)
    assert gate.limit == admission.START and not gate.lines
    idle_windows(gate, 1)
    assert (tmp_path / f"gate-{os.getpid()}").read_text() == f"{admission.START} 0 0\n"


def test_where_uwsgi_logs_every_answer_a_quiet_spell_lets_every_parked_thread_go(gate):
    # UWSGI_DISABLE_LOGGING=false: each answer's line is written once its
    # thread leaves the hook, so none may wait in it for the next load.
    gate, _ = gate
    gate.every_line = True
    gate.set_limit(1)
    threads = finish_requests(gate, 3)
    until(lambda: gate.parked == 3 and gate.owed == 3, "three parked, each owing its line")
    idle_windows(gate, admission.IDLE_WINDOWS)
    until(lambda: gate.parked == 0, "every parked thread let go")
    assert not any(thread.is_alive() for thread in threads)


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


def test_only_the_first_in_line_keeps_looking_the_others_sleep_until_told(gate):
    # Under overload, sixty requests waiting for a place each looked every
    # RECHECK: 3,000 turns at Python's lock a second, taken from the logins.
    gate, _ = gate
    # Threads starved of the lock on a busy machine may look as if they only
    # waited (the limit raised, two let in append in either order): not here.
    gate.all_waiting = lambda now: False
    order: list[str] = []
    holder = Held(gate, "holder", order)
    until(lambda: order == ["holder"], "the place taken")
    first = Held(gate, "first", order)
    until(lambda: len(gate.waiting) == 1, "the first waiting")
    behind = []
    for n in range(3):  # each in the line before the next comes: their turns are their arrivals
        behind.append(Held(gate, f"behind {n}", order))
        until(lambda n=n: len(gate.waiting) == 2 + n, f"behind {n} waiting")
    looked = first.looks, [request.looks for request in behind]
    time.sleep(10 * admission.RECHECK)  # the span the looks are counted over
    assert first.looks - looked[0] >= 3, (first.looks, looked)
    assert all(request.looks - before <= 1 for request, before in zip(behind, looked[1], strict=True)), \
        ([request.looks for request in behind], looked)
    # Told (a place freed), each moves up, in its turn.
    holder.done.set()
    until(lambda: order == ["holder", "first"], "the first let in")
    for request in [first, *behind]:
        request.done.set()
    until(lambda: len(order) == 5, "every one let in")
    assert order == ["holder", "first", "behind 0", "behind 1", "behind 2"]


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


def test_a_request_over_the_limit_takes_a_cpu_idle_for_a_while_and_waits_while_none_is(gate, monkeypatch):
    # A line is one process's, the CPUs are the pool's: a request waited in
    # one process's line while another process had nothing to do.
    gate, _ = gate
    gate.cpus = 2
    # Threads on the machine running or ready to, the reader aside: these
    # readings first, then `usual` at each look.
    readings, usual = [], [0]

    def others_running() -> int:
        return readings.pop(0) if readings else usual[0]
    monkeypatch.setattr(admission, "others_running", others_running)
    order: list[str] = []
    login = Held(gate, "login", order, hashes=True)
    until(lambda: order == ["login"], "the login let in")
    gate.cpus_busy = True  # the last window: requests that compute waited for a CPU
    page = Held(gate, "page", order)
    until(lambda: len(gate.waiting) == 1, "the page waiting")
    time.sleep(admission.WINDOW / 2)  # many looks' worth
    assert order == ["login"]
    # A neighbour's loop and the login, and a CPU idle for a moment only.
    gate.cpus_busy, usual[0] = False, 2
    readings += [1] * (admission.SPARE_LOOKS - 1) + [2]
    until(lambda: not readings, "every reading looked at")
    time.sleep(admission.WINDOW / 2)
    assert order == ["login"]
    usual[0] = 1  # the login alone: a CPU idle, look after look
    until(lambda: order == ["login", "page"], "the page let in", within=2.0)
    assert gate.limit == 1 and len(gate.inside) == 2  # over the limit, which stays where it was
    login.done.set()
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
    gate.set_limit(2)  # 2 threads free, 3 parked: one more may run
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


@pytest.mark.parametrize("status, owed", [("500 INTERNAL SERVER ERROR", True), ("503 UNAVAILABLE", True),
                                          ("200 OK", False), ("404 NOT FOUND", False)])
def test_an_answer_uwsgi_logs_is_owed_until_the_thread_leaves_the_hook(gate, status, owed):
    gate, _ = gate
    gate.set_limit(4)  # this thread goes on past the hook
    worker = SimpleNamespace(watchdog=SimpleNamespace(admission=gate))
    sent = []
    answer = Request(worker, {"REQUEST_METHOD": "GET"}, lambda *head: sent.append(head))
    answer.respond(status, [("Content-Length", "2")])
    assert sent == [(status, [("Content-Length", "2")], None)]  # uWSGI's start_response had it
    # log-5xx: uWSGI writes a line for a 5xx only, after the after-request hook.
    assert (threading.get_ident() in gate.lines) is owed
    gate.after_request()
    assert not gate.lines and gate.owed == 0
