"""A new worker's threads past START + 1 wait before their first accept
(request/newborn.py, admission.before_first_accept), so that a burst that
meets a new pool waits in the socket's queue every process shares instead
of in one worker's line. In process: uWSGI's naming of a thread it started
calls the hook, no other naming does; the gate parks the threads past two
and says none of them in gate-PID (uWSGI counts them idle); a raised limit,
a line of requests that only wait, and uWSGI's stop wake them. In a
container: uWSGI's own threads, each worker's first burst and its ramp."""

from __future__ import annotations

import _thread
import collections
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from gates import APP, Held, finish_requests, listener_events, started_gate, until

from flaskbox.layout import Generation
from flaskbox.request import newborn
from helpers import app_folder


@pytest.fixture
def hold():
    """newborn.hold, undone after the test (only _DummyThread's own `name` is set)."""
    yield newborn.hold
    if "name" in vars(threading._DummyThread):
        del threading._DummyThread.name


def named_in_a_c_thread(name: str) -> str:
    """What uWSGI does in each thread it starts: current_thread().name = name,
    in a thread threading did not start. The name read back."""
    done, read = threading.Event(), []

    def run() -> None:
        threading.current_thread().name = name
        read.append(threading.current_thread().name)
        done.set()

    _thread.start_new_thread(run, ())
    assert done.wait(5)
    return read[0]


def test_uwsgis_naming_of_a_thread_it_started_calls_the_hook_in_that_thread(hold):
    called: list[int] = []
    assert hold(lambda: called.append(threading.get_ident()))
    assert named_in_a_c_thread("uWSGIWorker1Core3") == "uWSGIWorker1Core3"
    assert len(called) == 1 and called[0] != threading.get_ident()
    assert named_in_a_c_thread("grpc_global_timer") == "grpc_global_timer"
    python_thread = threading.Thread(target=lambda: None)
    python_thread.name = "uWSGIWorker1Core4"  # a Thread of threading's own: not uWSGI's
    assert python_thread.name == "uWSGIWorker1Core4" and len(called) == 1


def test_a_hold_that_fails_lets_its_thread_go_on_and_says_so(hold, capsys):
    def broken() -> None:
        raise OSError("no /proc")
    assert hold(broken)
    assert named_in_a_c_thread("uWSGIWorker1Core2") == "uWSGIWorker1Core2"  # the thread went on, named
    assert "a thread not held before its first accept (OSError('no /proc'))" in capsys.readouterr().err


def born(gate, count: int) -> list[threading.Thread]:
    """`count` threads uWSGI starts, each at the gate before its first accept."""
    threads = [threading.Thread(target=gate.before_first_accept, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_a_new_workers_threads_past_two_park_before_their_first_accept(tmp_path):
    with started_gate(tmp_path, threads=6) as (gate, _):
        threads = born(gate, 5)  # the sixth, core 0, is the worker's main thread: never named
        until(lambda: gate.parked == 4, "four of six parked")
        until(lambda: sum(thread.is_alive() for thread in threads) == 4, "the fifth on to its accept")
        time.sleep(0.1)
        assert gate.parked == 4 and gate.born == 4
        # uWSGI counts them idle, not in a request: gate-PID says them apart (metrics.py subtracts
        # only those parked after an answer).
        assert (tmp_path / f"gate-{gate.pid}").read_text() == "1 0 4\n"
        # The thread that answered the start's first request stays free (one over the limit):
        # parked, a stream would take the last and leave no thread to tell the limit to double.
        finish_requests(gate, 1)[0].join(5)
        assert gate.parked == 4
        gate.set_limit(3)  # two not parked, four wanted (the limit and one over it): two let go
        until(lambda: gate.parked == 2, "two let go")
        time.sleep(0.1)
        assert gate.parked == 2 and gate.born == 2
    # started_gate's stop lets the rest go (a reload, a stop: uWSGI's stop pipe).
    until(lambda: not any(thread.is_alive() for thread in threads), "every held thread gone")


def test_the_arbiters_release_lets_every_held_thread_go_before_a_stop(tmp_path):
    # A held thread that uWSGI's stop woke after a `docker stop` had closed
    # the sockets added them to its queue: an epoll_ctl() error each, some
    # fourteen a worker. The arbiter's byte comes before its SIGTERM.
    generation = Generation(tmp_path)
    os.mkfifo(generation.release)
    with started_gate(tmp_path, threads=6) as (gate, _):
        threads = born(gate, 5)
        until(lambda: gate.parked == 4, "four parked")
        assert generation.held() == 4  # what the arbiter waits on
        generation.release_held()
        until(lambda: not any(thread.is_alive() for thread in threads), "every held thread gone")
        assert generation.held() == 0
        later = born(gate, 1)[0]  # one born after it (a worker replaced meanwhile) goes on too
        later.join(5)
        assert not later.is_alive() and gate.parked == 0
        finish_requests(gate, 1)[0].join(5)
        assert gate.parked == 0  # nor does a thread park after its answer


def test_requests_that_only_wait_wake_a_thread_held_at_birth_for_the_next(tmp_path):
    # A page that waits ramps at once, as it did with all sixteen threads
    # taking requests: each doubling lets one more thread than it lets in
    # take a request, whose wait in the line says when to double again.
    with started_gate(tmp_path, threads=6) as (gate, _):
        born(gate, 5)
        until(lambda: gate.parked == 4, "four parked")
        order: list[str] = []
        held = [Held(gate, "stream", order, waits=True)]
        until(lambda: order == ["stream"], "the stream let in")
        held.append(Held(gate, "page", order, waits=True))
        until(lambda: order == ["stream", "page"], "the page let in")
        assert gate.limit == 2
        until(lambda: gate.parked == 3, "a held thread woken for the next request")
        for request in held:
            request.done.set()


# --- in uWSGI ----------------------------------------------------------------


def test_a_new_worker_takes_two_of_a_burst_and_a_page_that_waits_still_gets_all_sixteen(containers, tmp_path,
                                                                                      figure):
    app = app_folder(tmp_path, APP)
    c = containers.serving(env={"UWSGI_PROCESSES": "1"}, docker_args=("-v", f"{app}:/app:ro"))
    # Fourteen of the sixteen threads wait before they make their queue.
    registered = listener_events(c)
    assert len(registered) == 2 and all(events & select.EPOLLIN for events in registered), registered
    # Sixteen that wait a second: the limit doubles as they queue, each
    # doubling waking the threads it lets in, so all run at once.
    began = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: requests.get(f"http://127.0.0.1:{c.port}/wait/1.0", timeout=30),
                                range(16)))
    took = time.monotonic() - began
    assert [answer.status_code for answer in answers] == [200] * 16, c.logs()[-3000:]
    assert took < 3.5, (took, c.logs()[-3000:])
    figure("sixteen waits of 1 s at a new worker holding fourteen threads, answered in", f"{took:.2f} s")
    c.wait_until(lambda: len(listener_events(c)) == 16, "every thread's queue made", timeout=5)


def test_a_burst_at_a_new_pool_spreads_over_its_workers(containers, tmp_path, figure):
    # Ten requests of 0.3 s of CPU, all sent at once, at a pool of two
    # workers started a moment before: each worker takes two, and the rest
    # wait in the shared queue for the first that has room. Before, one
    # worker's sixteen threads took as many of a burst as its chain could
    # (docs/BENCHMARKS.md, "Where a new container's first burst goes").
    app = app_folder(tmp_path, APP)
    c = containers.serving(env={"UWSGI_PROCESSES": "2"}, docker_args=("-v", f"{app}:/app:ro"))
    barrier = threading.Barrier(10)

    def get(_) -> requests.Response:
        barrier.wait()
        return requests.get(f"http://127.0.0.1:{c.port}/burn/0.3", timeout=60)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(get, range(10)))
    assert [answer.status_code for answer in answers] == [200] * 10, c.logs()[-3000:]
    by_worker = collections.Counter(answer.text for answer in answers)
    assert len(by_worker) == 2 and max(by_worker.values()) <= 7, (by_worker, c.logs()[-3000:])
    figure("ten requests sent at once to two new workers, answered by each", f"{sorted(by_worker.values())}")
