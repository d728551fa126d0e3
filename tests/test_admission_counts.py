"""What a window of ADAPTIVE_THREADS' rule counts of each request, in
process on a fake clock (request/admission.py): a wait outside (a row
lock, a remote call) lends its place and is neither contention nor work; a
kind that got faster while its requests were lent takes nothing back from
the window; a request the watchdog answered 504 is not its kind's time
alone. The rule itself: test_admission.py."""

from __future__ import annotations

import pytest
from gate_fakes import THREADS, Clock, gate, measured, request, taking_turns

from flaskbox.request import admission
from flaskbox.request.admission import WINDOW


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(admission, "monotonic", fake)
    return fake


def test_a_request_waiting_outside_lends_its_place_until_its_thread_computes_again(clock, monkeypatch):
    """A login of 4 ms that waits 2 s on a row lock: past its time alone,
    its thread uses no CPU for a window, so its place goes to the next in
    line, and its wait is neither contention nor work. One late because
    its thread computes slowly (a neighbour, a quota) keeps its place."""
    g = gate()
    measured(g, clock, "/login", 0.004)
    assert g.limit == 1
    cpu = {1: 0.0, 2: 0.0}  # each request thread's CPU clock
    monkeypatch.setattr(admission, "thread_cpu", lambda ident: cpu[ident])
    stalled, other = request("/login"), request("/login")
    assert g.take(stalled)
    g.running[1] = stalled  # its thread (the watchdog's registry: Request.watch, once let in)
    clock.step(WINDOW)
    assert not g.take(other)  # a first look at its thread
    clock.step(WINDOW)
    assert g.take(other)  # no CPU for a window: its place lent
    assert (g.inside, g.out, g.limit) == (1, 1, 1) and not g.idle(set())
    # Its thread computes again: it takes its place back, over the limit,
    # and the one let in meanwhile no longer runs alone: its time is not its kind's alone.
    cpu[1] = 0.1
    clock.step(WINDOW)
    assert not g.take(request("/login"))
    assert (g.inside, g.out) == (2, 0)
    g.leave(other, whole=True)
    assert g.times.kinds["GET /login"].alone == pytest.approx(0.004)
    g.leave(stalled, whole=True)
    del g.running[1]
    assert g.idle(set()) and g.limit == 1
    # Late, its thread computing slowly (a neighbour, a quota), or waiting
    # for Python's lock, which it wakes to ask for each 5 ms (0.5 % of a
    # window, measured): its place is its own.
    for share in (0.05, 0.005):
        g = gate()
        measured(g, clock, "/login", 0.004)
        late = request("/login")
        assert g.take(late)
        g.running[2] = late
        for _ in range(3):
            cpu[2] += WINDOW * share
            clock.step(WINDOW)
            assert not g.take(other), share
        g.leave(late, whole=True)
        assert g.idle(set())


def test_waits_of_a_kind_never_measured_alone_lend_their_places_too(clock, monkeypatch):
    """A burst of 3 s waits (a sleep, a remote call) reaches a worker that
    never ran one alone: two at once, neither alone, their kind's time alone
    unknown. Their threads use no CPU for a window: their places are lent,
    and the line goes in. Before, only a request past a known time alone
    was lent: the pair held the limit at two, 2 answers every 3 s, and the
    burst's last were refused with 503 (seen beside two busy loops)."""
    g = gate()
    g.limit = 2
    cpu = {1: 0.0, 2: 0.0}
    monkeypatch.setattr(admission, "thread_cpu", lambda ident: cpu[ident])
    for ident in cpu:
        waiting = request("/slow")
        assert g.take(waiting)
        g.running[ident] = waiting
    assert g.times.kinds.get("GET /slow") is None or not g.times.kinds["GET /slow"].alone
    line = [request("/slow") for _ in range(2)]
    clock.step(WINDOW)
    assert not g.take(line[0])  # a first look at their threads
    clock.step(WINDOW)
    assert all(g.take(r) for r in line)  # no CPU for a window: both places lent
    assert (g.inside, g.out) == (2, 2)


def test_a_kind_that_got_faster_while_its_requests_were_lent_takes_nothing_back(clock, monkeypatch):
    """Four logins wait on a remote call together, their places lent (each
    credited its kind's time alone as it was); one run alone meanwhile
    lowers that time; the four compute again in one window. The window
    ends with a limit, not an error (the square root of a negative: a 500,
    or the watchdog's thread gone)."""
    g = gate(8)
    measured(g, clock, "/login", 0.05)
    g.limit = 4
    cpu = dict.fromkeys(range(1, 5), 0.0)
    monkeypatch.setattr(admission, "thread_cpu", lambda ident: cpu[ident])
    for ident in cpu:
        stalled = request("/login")
        assert g.take(stalled)
        g.running[ident] = stalled
    for _ in range(2):  # a first look at their threads, then a window with no CPU: all four lent
        clock.step(WINDOW)
        with g.lock:
            g.looking()
    assert (g.inside, g.out) == (0, 4)
    quick = request("/login")
    assert g.take(quick)
    clock.step(0.001)
    g.leave(quick, whole=True)
    assert g.times.kinds["GET /login"].alone < 0.04
    for ident in cpu:  # the remote call answers: all four compute again
        cpu[ident] = 1.0
    clock.step(WINDOW)
    assert not g.take(request("/login"))  # the window ends; the four hold their places again
    assert (g.inside, g.out) == (4, 0) and 1 <= g.limit <= 8


def test_a_request_answered_504_is_not_its_kinds_time_alone(clock):
    """A 20 ms page stuck in a quiet worker until the watchdog answers it
    504: its 30 s are not the page's time alone (which would count pages
    taking turns as all useful, and raise the limit to every thread)."""
    g = gate()
    measured(g, clock, "/compute", 0.02)
    stuck = request("/compute")
    assert g.enter(stuck, 30.0)
    clock.step(30.0)
    g.leave(stuck, ident=12345)  # the watchdog's (guards.Watchdog._expire)
    assert g.times.kinds["GET /compute"].alone == pytest.approx(0.02)
    g.limit = THREADS
    limits = taking_turns(g, clock, 30)  # pages that take turns: each 20 ms of the worker's CPU
    assert set(limits[-10:]) <= {2, 3}, limits
