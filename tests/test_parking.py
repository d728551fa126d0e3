"""ADAPTIVE_THREADS' threads the limit does not need, parked in uWSGI's
after-request hook (request/parking.py), in process with real threads: a
thread past the limit parks, one within it goes on, a thread whose answer
is whole counts as back in the loop at once and one a stream keeps does
not, a raised limit lets parked threads go, the last parked first
whoever looks, a parked thread's own look ends a window nobody ended, and
the worker's end (a stop's notice, a retirement, uWSGI's max-requests
coming) lets them all go; a thread that answered a 5xx never parks. The
containers' proof: test_adaptive_threads.py."""

from __future__ import annotations

import threading
import time

from gate_fakes import Fake

from flaskbox.request import admission, outbound, parking, serve, stopping
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


def test_threads_past_the_limit_park_and_a_raised_limit_lets_them_go():
    g = gate(threads=4)
    assert g.limit == admission.START == 1 and g.short() == 1 - 4  # wanted: its one place
    threads = after_request_in_threads(g, 4)
    until(lambda: g.parked == 3 and sum(t.is_alive() for t in threads) == 3)  # one goes on: the limit's
    with g.lock:
        g.limit = 3
        g.looked()
    until(lambda: g.parked == 1)  # two back, for the two places more
    with g.lock:
        g.limit = 4
        g.looked()
    until(lambda: g.parked == 0 and not any(t.is_alive() for t in threads))


def test_the_thread_that_goes_back_is_the_last_parked_whoever_looks(monkeypatch):
    # The threads that serve stay few and warm: each thread keeps its own
    # state (a connection, a cache), and with any parked thread's look
    # sending itself back, 11 to 20 threads of a CKAN-shaped worker's 32
    # served every 5 s at a limit of about two; the last parked first, 4 or 5.
    monkeypatch.setattr(parking, "PARK_LOOK", 0.01)  # the first parked looks first and often
    g = gate(threads=4)
    looks = []
    look = g.looking
    monkeypatch.setattr(g, "looking", lambda: (looks.append(1), look()))
    back: list[str] = []
    threads = []
    for name in ("first", "second", "third"):
        thread = threading.Thread(target=lambda n=name: (g.after_request(), back.append(n)), daemon=True)
        thread.start()
        threads.append(thread)
        until(lambda: g.parked == len(threads))
    with g.lock:
        g.limit = 2  # a place more, and nobody told: only the parked threads' own looks see it
    until(lambda: back)
    seen = len(looks)
    until(lambda: len(looks) >= seen + 20)  # ten more looks of each thread still parked: none more goes
    assert back == ["third"] and g.parked == 2
    g.end()
    for thread in threads:
        thread.join(5)


def test_a_thread_a_stream_keeps_is_not_one_the_accept_loop_has():
    g = gate(threads=4)
    threads = after_request_in_threads(g, 4)
    until(lambda: g.parked == 3)
    # A stream comes: its request is let in, hands its generator back (its
    # place given back), and keeps its thread for as long as it sends.
    with g.lock:
        g.inside += 1  # let in: the thread that took it is no longer in the accept loop
        g.inside -= 1
        g.sent.add(12345)
        g.looked()
    until(lambda: g.parked == 2)  # one parked thread back in uWSGI's loop in its stead
    with g.lock:
        g.sent.update((12346, 12347))
        g.looked()
    until(lambda: g.parked == 0)
    g.end()
    for thread in threads:
        thread.join(5)


def test_the_workers_end_lets_every_parked_thread_go_and_none_parks_after():
    g = gate(threads=4)
    threads = after_request_in_threads(g, 4)
    until(lambda: g.parked == 3)
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


def test_the_usual_answers_thread_goes_on_without_the_lock_and_is_still_counted():
    g = gate(threads=4, recycles=lambda: 3)
    g.limit = 4  # every thread wanted: none parks
    g.after_request()  # the first learns when uWSGI recycles the worker
    with g.lock:  # held by another thread: the usual answer's does not wait for it
        going = threading.Thread(target=g.after_request, daemon=True)
        going.start()
        going.join(5)
        assert not going.is_alive() and not g.ending
    g.after_request()  # the third: counted all the same, the worker is to end
    assert g.ending


def test_a_thread_that_answered_a_5xx_goes_on_for_its_log_line():
    g = gate(threads=4)
    parked = after_request_in_threads(g, 2)
    until(lambda: g.parked == 2)
    owing = threading.Thread(target=lambda: (g.owes_line(), g.after_request()), daemon=True)
    owing.start()
    owing.join(5)
    assert not owing.is_alive() and g.parked == 2 and not g.lines  # it went on; the two before it parked
    g.end()
    for thread in parked:
        thread.join(5)


class Started:
    """A watchdog whose thread runs (not these tests' concern)."""

    started = True

    def __init__(self):
        self.running = {}


def test_the_wrappers_own_5xx_answers_go_on_for_their_log_line_too():
    """The 503 of an address past its share of threads and the 500 for a
    head too big to pass on are 5xx answers as the app's are: their thread
    does not park (uWSGI writes the line as it leaves the hook)."""
    def stream(env, respond):
        respond("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a"])

    def huge_head(env, respond):
        respond("200 OK", [("Content-Type", "text/plain"), ("X-Big", "x" * 70000)])
        return [b"a"]

    for app, status in ((stream, "503 Service Unavailable"), (huge_head, "500 Internal Server Error")):
        watchdog = Started()
        g = gate(threads=4, running=watchdog.running)
        share = outbound.Share(1, 1, 4)  # one answer at its pace an address, which it holds already
        assert share.take("203.0.113.9", 0) is not None
        served = serve.Serve(app, 30.0, gate=g, watchdog=watchdog, share=share)
        said = []

        def request_then_hook(served=served, g=g, said=said):
            env = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/e", "PATH_INFO": "/e",
                   "REMOTE_ADDR": "203.0.113.9"}
            list(served(env, lambda answered, headers, exc_info=None: said.append(answered)))
            g.after_request()

        thread = threading.Thread(target=request_then_hook, daemon=True)
        thread.start()
        thread.join(5)
        parked = thread.is_alive()
        g.end()
        thread.join(5)
        assert said == [status] and not parked, (said, "its thread parked: uWSGI's line for it waits")


def test_where_uwsgi_logs_every_answer_no_thread_parks():
    g = gate(threads=4, parks=False)
    threads = after_request_in_threads(g, 4)
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads) and g.parked == 0


def test_a_thread_is_wanted_for_each_free_place_and_none_for_a_request_in_the_line():
    g = gate(threads=4)
    with g.lock:
        g.inside = 1  # its one place held
        assert g.short() == 0 - 3  # no free place; three threads there (four, one holding it)
        g.line.append(admission.Turn())  # a request over the limit waits in the worker's line
        assert g.short() == 0 - 2  # still none wanted: the two left in the loop may park
        g.limit = 3
        assert g.short() == 2 - 2


def test_a_whole_answers_thread_counts_as_back_in_the_loop_and_a_streams_does_not():
    g = gate(threads=4)
    whole, stream = Fake("/page"), Fake("/events")
    assert g.take(whole)
    g.limit = 2
    assert g.take(stream)
    g.leave(whole, whole=True)  # its thread goes straight back to uWSGI: nobody woken for it
    assert not g.sent and g.short() == 1 - 3
    g.leave(stream)  # its thread sends for as long as its client takes
    assert len(g.sent) == 1 and g.short() == 2 - 3


def test_a_whole_answer_wakes_no_parked_thread_and_a_streams_place_wakes_one():
    g = gate(threads=4)
    whole, stream = Fake("/page"), Fake("/events")
    assert g.take(whole)
    threads = after_request_in_threads(g, 3)
    until(lambda: g.parked == 3)  # the limit's one place is held: the other three park
    g.leave(whole, whole=True)  # its thread is back in uWSGI's loop for the free place
    assert g.woken == 0 and len(g.sleepers) == 3
    assert g.take(stream)
    g.leave(stream)  # its thread sends on: the free place needs a thread from the parked
    until(lambda: g.parked == 2)
    assert len(g.sleepers) == 2 and sum(t.is_alive() for t in threads) == 2
    g.end()
    for thread in threads:
        thread.join(5)


def test_a_parked_threads_own_look_ends_a_window_nobody_ended(monkeypatch):
    monkeypatch.setattr(parking, "PARK_LOOK", 0.02)
    g = gate(threads=4)
    alone = Fake("/export")
    assert g.take(alone)  # a new worker's one place, held by a request alone for long
    threads = after_request_in_threads(g, 3)
    until(lambda: g.parked == 3)
    # Nothing enters or leaves; the parked threads' looks end the windows,
    # each one place used, and the limit rises: a thread back for each.
    until(lambda: g.limit >= 3 and g.parked <= 4 - g.limit, within=5 * admission.WINDOW * 10)
    g.end()
    for thread in threads:
        thread.join(5)
