"""ADAPTIVE_THREADS' rule in process (request/admission.py), on a fake
clock: each window the limit becomes the places its requests used at their
time alone, plus the square root of that. Requests that only wait raise it
to every thread; requests that take turns at Python's lock, or share a CPU,
hold it at about two; a request over it waits in arrival order while its
answer could still start in time. The containers' proof:
test_adaptive_threads.py and test_overload_goodput.py."""

from __future__ import annotations

import os
import threading
import time

import pytest
from gate_fakes import Clock, alone, gate, measured, request, taking_turns

from flaskbox.layout import Generation
from flaskbox.request import admission, deadline
from flaskbox.request.admission import REMEASURE, START, WINDOW, Gate

THREADS = 16


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(admission, "monotonic", fake)
    return fake


def let_in(g: Gate, path: str, count: int) -> list:
    """`count` requests of `path` let in at once (each finds a place)."""
    running = [request(path) for _ in range(count)]
    for r in running:
        assert g.enter(r, 30.0)
    return running


def windows(g: Gate, clock: Clock, count: int, at_once: int, path: str, seconds: float) -> list[int]:
    """`count` windows of `at_once` requests of `path` at a time (or the
    limit, if lower), each taking `seconds` now, one ending every step; the
    limit after each window."""
    limits = []
    running: list = []
    for _ in range(count):
        end = clock.now + WINDOW
        while clock.now < end:
            while len(running) < min(at_once, g.limit):
                r = request(path)
                assert g.enter(r, 30.0)
                running.append((clock.now + seconds, r))
            running.sort(key=lambda item: item[0])
            finish, r = running.pop(0)
            clock.now = max(clock.now, finish)
            g.leave(r)
        limits.append(g.limit)
    for _, r in running:
        g.leave(r)
    return limits


def test_a_new_worker_runs_one_request_at_a_time_and_measures_each_kind_alone(clock):
    g = gate()
    assert g.limit == START == 1
    alone(g, clock, "/page", 1.5)  # its first, a second or more: perhaps the app's set-up, kept apart
    alone(g, clock, "/page", 0.02)
    alone(g, clock, "/page", 0.04)
    alone(g, clock, "/users/12", 0.1)  # a quicker first counts
    alone(g, clock, "/users/34", 0.5)
    kinds = g.times.kinds
    assert kinds["GET /page"].alone == pytest.approx(0.03)  # the mean of those after it
    assert kinds["GET /users/#"].alone == pytest.approx(0.3)


def test_requests_that_only_wait_raise_the_limit_to_every_thread_by_its_square_root(clock):
    g = gate()
    measured(g, clock, "/wait", 0.005)
    # A database's 5 ms, whatever runs beside: every request in its time alone.
    limits = windows(g, clock, 10, 64, "/wait", 0.005)
    assert limits[:4] == [2, 3, 5, 7]  # used + sqrt(used), each window
    assert limits[-1] == THREADS


def test_requests_that_take_turns_settle_at_about_two(clock):
    g = gate()
    measured(g, clock, "/compute", 0.02)
    g.limit = THREADS
    limits = taking_turns(g, clock, 30)
    assert limits[0] < THREADS and set(limits[-10:]) <= {2, 3}, limits


def test_a_request_in_flight_past_its_time_alone_counts_late_at_the_windows_end(clock):
    g = gate(4)
    measured(g, clock, "/export", 0.05)
    g.limit = 4
    let_in(g, "/export", 4)
    # Nothing ends: four exports, each four times its time alone, still in flight.
    clock.step(WINDOW * 2)
    other = request("/export")
    assert not g.enter(other, 0.0)  # over the limit, no time left to wait: refused
    # Four each 0.15 s past their 0.05 s alone, and the one alone, which
    # left: (5 x 0.05) / (4 x 0.2 + 0.05) of 4 places used (1.2), and its root.
    assert g.limit == 2


def test_a_request_still_in_counts_the_place_time_it_has_held_within_its_time_alone(clock):
    g = gate(8)
    measured(g, clock, "/report", 2.0)
    g.limit = 4
    # Four reports of 2 s that only wait, let in at once: a window on, none
    # has left, and each has held its place within its time alone. The
    # limit rises now, not once they end.
    let_in(g, "/report", 4)
    clock.step(WINDOW * 2)
    assert g.enter(request("/report"), 0.0) and g.limit == 6  # 4 used, and its root
    # Past their 2 s, what they hold counts late, window after window.
    for _ in range(25):
        clock.step(WINDOW)
        g.turn(clock.now)
    assert g.limit == 1


def test_a_first_request_that_holds_the_worker_to_itself_does_not_hold_the_limit_at_one(clock):
    g = gate()
    export = request("/export")  # a new worker's first request: minutes of waiting on a database
    assert g.enter(export, 30.0)
    page = request("/")
    assert not g.enter(page, 0.0)  # the limit is one
    clock.step(WINDOW * 2)
    # All its time so far is its time alone: one place used, and its root.
    assert g.enter(page, 0.0) and g.limit == 2
    # The watchdog answers it 504 from its own thread: the place goes, the thread stays stuck.
    g.leave(export, ident=12345)
    assert g.inside == 1 and 12345 in g.sent and not g.idle({12345})
    g.leave(page)  # its answer sent on, until uWSGI's hook
    g.leave(export)  # its own thread, should it ever come back: nothing twice
    assert g.inside == 0 and not g.idle({12345})
    g.sent.discard(threading.get_ident())  # (the hook: parking.py)
    assert g.idle({12345}) and not g.idle(set())  # the stuck thread's never ends


def test_a_kind_not_yet_measured_alone_stands_for_it_with_its_threads_cpu_time(clock, monkeypatch):
    g = gate()
    alone(g, clock, "/", 0.005)  # a health probe first: the limit rises before any login came alone
    g.limit = 8
    # Each thread's CPU clock: 0 as its request is let in, 0.05 s as it leaves.
    readings = iter([0.0] * 8 + [0.05] * 8)
    monkeypatch.setattr(admission, "thread_time", lambda: next(readings))
    # Eight logins of a kind never run alone, at once, 0.05 s of CPU each,
    # taking turns: the last took 0.4 s, all but its 0.05 s late.
    running = let_in(g, "/login", 8)
    for r in running:
        clock.step(0.05)
        g.leave(r)
    assert g.limit <= 3, g.limit
    assert g.times.kinds["GET /login"].alone == 0.0  # not one of them alone


def test_requests_of_a_new_kind_beside_each_other_let_none_in_until_one_leaves(clock):
    """Three requests of a kind not yet measured reach a new worker at once:
    the first runs alone, the second comes in as the limit rises to two,
    and the third waits while they run. Whether they wait on a database or
    for a CPU a neighbour holds, nothing in the worker tells: credited as
    waiting (by the process's idle CPU), logins beside two busy loops and a
    busy container were let in up to 10 a worker where one or two fit: 2
    good answers in 15 s, the rest 503 and 504 (test_overload_goodput.py)."""
    g = gate()
    first, second, third = request("/export"), request("/export"), request("/export")
    assert g.enter(first, 30.0)
    clock.step(WINDOW * 2)
    assert g.enter(second, 30.0) and g.limit == 2
    for _ in range(10):
        clock.step(WINDOW)
        assert not g.take(third)
    assert g.limit == 2
    g.leave(first)  # its own CPU time: none, so the wait shows as late
    assert g.limit <= 2


def test_a_request_over_the_limit_waits_in_arrival_order_and_is_refused_when_its_time_runs_out(clock):
    g = gate()
    first = request()
    assert g.enter(first, 30.0)
    order: list[str] = []
    waiting = []

    def wait(name: str, left: float) -> None:
        r = request()
        if g.enter(r, left):
            order.append(name)
            waiting.append(r)
        else:
            order.append(f"{name} refused")

    threads = []
    for name, left in (("second", 30.0), ("third", 30.0), ("late", 0.05)):
        thread = threading.Thread(target=wait, args=(name, left))
        thread.start()
        threads.append(thread)
        count = len(threads)
        until(lambda count=count: len(g.line) + len(order) == count)
    clock.step(0.06)  # past the late one's 0.05 s, within the window: the limit stays
    threads[2].join(5)
    assert order == ["late refused"]
    g.leave(first)
    threads[0].join(5)
    assert order == ["late refused", "second"]
    g.leave(waiting[0])
    threads[1].join(5)
    assert order == ["late refused", "second", "third"]
    g.leave(waiting[1])
    assert g.inside == 0 and not g.line


def test_a_worker_below_its_threads_runs_a_window_at_one_when_nothing_ran_alone_for_a_while(clock):
    g = gate()
    measured(g, clock, "/compute", 0.02)
    taking_turns(g, clock, 1)  # its first window, at one: each alone
    since = g.alone_at
    limits = []
    while clock.now < since + REMEASURE - 2 * WINDOW:
        limits += taking_turns(g, clock, 1)
    assert set(limits) == {2} and not g.kept  # none alone, not yet for REMEASURE
    kind = g.times.kinds["GET /compute"]
    # As if its database had been faster then.
    kind.alone = 0.01
    kind.alones.clear()
    kind.alones.append(0.01)
    limits = taking_turns(g, clock, 5)
    # At one, a request let in ran alone (two at a time, none does): measured again, nearer its 20 ms.
    assert g.times.kinds["GET /compute"].alone > 0.015
    assert limits[-1] == 2 and not g.kept  # then back where it was


def test_the_window_at_one_ends_as_soon_as_a_kinds_time_alone_is_made_anew(clock):
    g = gate()
    measured(g, clock, "/page", WINDOW)  # a page that waits a tenth of a second
    g.limit = 2
    g.alone_at -= REMEASURE  # as if none had run alone for that long
    running = let_in(g, "/page", 2)
    clock.step(WINDOW)
    g.leave(running.pop())  # the window's end: 2 used, 3 with headroom, and the window at one begins
    assert (g.limit, g.kept) == (1, 3)
    g.leave(running.pop())  # (let in before it: not alone)
    assert g.limit == 1
    first = let_in(g, "/page", 1)[0]
    for _ in range(deadline.ALONE_KEPT):  # its time alone, the mean of three, made anew
        assert g.limit == 1
        following = request("/page")
        assert not g.take(following)
        g.line.append(turn := admission.Turn())  # it waits in line (Gate.wait)
        clock.step(0.01)
        g.leave(first)
        assert not turn.let.locked() and g.inside == 1  # its place at once, not at the window's end
        with g.lock:
            g.let_in(following, following.times, clock.now)
        first = following
    clock.step(0.01)
    g.leave(first)
    assert g.times.kinds["GET /page"].alone == pytest.approx(0.01)
    # The limit back at once, not a window later.
    assert (g.limit, g.kept) == (3, 0) and clock.now - g.window < WINDOW


def test_the_limit_is_said_for_an_operator_by_the_watchdogs_thread(clock, tmp_path):
    g = Gate(THREADS, deadline.Times(30.0), Generation(tmp_path))
    measured(g, clock, "/wait", 0.005)
    windows(g, clock, 3, 64, "/wait", 0.005)
    said = tmp_path / f"gate-{os.getpid()}"
    assert not said.exists()  # not under the lock, as a request leaves
    g.report()  # the watchdog's thread, as it looks
    assert said.read_text() == f"{g.limit}\n"


def until(condition, within: float = 5.0) -> None:
    """Polls a condition the gate's own threads make true."""
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "not within the time allowed"
        time.sleep(0.001)
