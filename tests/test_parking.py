"""ADAPTIVE_THREADS' threads the limit does not need, parked in uWSGI's
after-request hook (request/parking.py), in process with real threads: a
thread past the limit and one more parks, one over it goes on, a raised
limit lets parked threads go, and so does a thread a stream keeps, and the worker's end (a stop's
notice, a retirement, uWSGI's max-requests coming); a thread that answered
a 5xx never parks. The containers' proof: test_adaptive_threads.py."""

from __future__ import annotations

import threading
import time

from flaskbox.request import admission, stopping
from flaskbox.request.admission import Gate
from flaskbox.request.deadline import Times


def gate(threads: int = 4, **kwargs) -> Gate:
    made = Gate(threads, Times(30.0), **kwargs)
    stopping.ENDING.remove(made.end)  # this test's own, not the process's
    return made


def after_request_in_threads(g: Gate, count: int) -> list[threading.Thread]:
    """`count` threads each done with a request: uWSGI calls the hook in each."""
    threads = [threading.Thread(target=g.after_request, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def until(condition, within: float = 5.0) -> None:
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "not within the time allowed"
        time.sleep(0.001)


def test_threads_past_the_limit_and_one_more_park_and_a_raised_limit_lets_them_go():
    g = gate(threads=4)
    assert g.limit == admission.START == 1 and g.short() == 2 - 4  # wanted: its one place, and one more
    threads = after_request_in_threads(g, 4)
    until(lambda: g.parked == 2 and sum(t.is_alive() for t in threads) == 2)  # two go on: the limit's and one
    with g.lock:
        g.limit = 3
        g.looked()
    until(lambda: g.parked == 0 and not any(t.is_alive() for t in threads))


def test_a_thread_a_stream_keeps_is_not_one_the_accept_loop_has():
    g = gate(threads=4)
    threads = after_request_in_threads(g, 4)
    until(lambda: g.parked == 2)
    # A stream comes: its request is let in, hands its generator back (its
    # place given back), and keeps its thread for as long as it sends.
    with g.lock:
        g.inside += 1  # let in: the thread that took it is no longer in the accept loop
        g.inside -= 1
        g.sent.add(12345)
        g.looked()
    until(lambda: g.parked == 1)  # one parked thread back in uWSGI's loop in its stead
    with g.lock:
        g.sent.add(12346)
        g.looked()
    until(lambda: g.parked == 0)
    g.end()
    for thread in threads:
        thread.join(5)


def test_the_workers_end_lets_every_parked_thread_go_and_none_parks_after():
    g = gate(threads=4)
    threads = after_request_in_threads(g, 4)
    until(lambda: g.parked == 2)
    stopping.ENDING.append(g.end)
    try:
        stopping.worker_ends()  # the arbiter's notice, or the watchdog's retirement
    finally:
        stopping.ENDING.remove(g.end)
    until(lambda: not any(t.is_alive() for t in threads))
    g.after_request()  # returns at once: the worker is ending
    assert g.parked == 0


def test_none_parks_once_uwsgi_is_about_to_recycle_the_worker():
    g = gate(threads=4, recycles=lambda: 3)  # max-requests less its margin
    parked = after_request_in_threads(g, 2)
    until(lambda: g.parked == 2)
    late = after_request_in_threads(g, 2)  # the third request: uWSGI recycles the worker soon
    until(lambda: not any(t.is_alive() for t in parked + late))
    assert g.ending and g.parked == 0


def test_a_thread_that_answered_a_5xx_goes_on_for_its_log_line():
    g = gate(threads=4)
    parked = after_request_in_threads(g, 2)
    until(lambda: g.served == 2)
    owing = threading.Thread(target=lambda: (g.owes_line(), g.after_request()), daemon=True)
    owing.start()
    owing.join(5)
    assert not owing.is_alive() and g.parked == 2 and not g.lines  # it went on; the two before it parked
    g.end()
    for thread in parked:
        thread.join(5)


def test_where_uwsgi_logs_every_answer_no_thread_parks():
    g = gate(threads=4, parks=False)
    threads = after_request_in_threads(g, 4)
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads) and g.parked == 0


def test_while_a_request_waits_in_the_line_no_thread_is_wanted_taking_more():
    g = gate(threads=4)
    with g.lock:
        g.inside = 1  # its one place held
        assert g.short() == 1 - 3  # no free place, and one more wanted; three there (four, one holding it)
        g.line.append(admission.Turn())  # a request over the limit waits: demand is told
        assert g.short() == 0 - 2  # none wanted now: the two left in the loop may park
