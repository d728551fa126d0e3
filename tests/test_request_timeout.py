"""REQUEST_TIMEOUT holds: a handler running past it is answered with a 5xx
within REQUEST_TIMEOUT + 2 s whatever else its worker does, and its worker's
capacity comes back. A response cut short (by the timeout, or an exception
mid-stream) ends in an error the client can see, never a clean end."""

import http.client
import threading
import time

import pytest

from load import Load

TIMEOUT = 3


def timed_get(container, path: str, timeout: float = 20) -> tuple[int, float]:
    started = time.monotonic()
    status = container.request(path, timeout=timeout).status
    return status, time.monotonic() - started


def concurrent_sleeps(container, count: int, seconds: int) -> float:
    """Sends `count` requests of `seconds` at once; how long until all end."""
    results: list[int] = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(container.request(f"/sleep/{seconds}",
                                                                                 timeout=30).status))
               for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * count, results
    return time.monotonic() - started


@pytest.mark.parametrize("processes, threads", [("2", "1"), ("1", "2")], ids=["1-thread", "2-threads"])
def test_stuck_handler_under_steady_traffic_is_cut_and_capacity_returns(containers, fixture_image, figure,
                                                                        processes, threads):
    c = containers.serving(image=fixture_image["image"], env={
        "REQUEST_TIMEOUT": str(TIMEOUT), "UWSGI_PROCESSES": processes, "UWSGI_THREADS": threads})
    # Steady traffic on every worker meanwhile: with uWSGI 2.0's per-process
    # harakiri each of these requests used to reset the stuck one's timer.
    with Load(c.port, path="/", connections=4, seconds=TIMEOUT + 4) as load:
        status, elapsed = timed_get(c, "/hang")
    # The others go on being served. With 2 threads, the request sharing the
    # stuck one's process when it is killed is cut too (README: threads).
    failures = Load.failures(load.outcomes)
    assert load.outcomes and len(failures) <= int(threads) - 1, Load.summary(load.outcomes)
    figure(f"stuck handler, REQUEST_TIMEOUT={TIMEOUT}, {processes} x {threads}: status, seconds",
           f"{status}, {elapsed:.2f}")
    assert 500 <= status < 600, status
    assert elapsed < TIMEOUT + 2, f"answered after {elapsed:.1f}s\n{c.logs()}"
    # Every thread serves again: as many 2 s requests as there are threads
    # end together, in about 2 s, not one round later.
    capacity = int(processes) * int(threads)
    assert concurrent_sleeps(c, capacity, 2) < 3.5, c.logs()
    assert "HARAKIRI" in c.logs() or "ran past REQUEST_TIMEOUT" in c.logs()


def read_stream(container, path: str) -> tuple[bytes, str]:
    """The body of a streamed response and how it ended: 'complete', or the
    error a client sees."""
    conn = http.client.HTTPConnection("127.0.0.1", container.port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    try:
        return resp.read(), "complete"
    except http.client.IncompleteRead as exc:
        return exc.partial, "IncompleteRead"
    finally:
        conn.close()


@pytest.fixture(scope="module")
def streaming(module_containers):
    return module_containers.serving(env={"REQUEST_TIMEOUT": str(TIMEOUT)})


def test_a_stream_cut_by_the_timeout_is_not_a_clean_end(streaming):
    # 50 lines, one every 0.1 s: 5 s, past the 3 s timeout.
    body, ending = read_stream(streaming, "/stream/50?every=0.1")
    assert ending == "IncompleteRead", body[-200:]
    assert body.startswith(b"line 0 ") and b"line 49 " not in body


def test_a_stream_that_fails_half_way_is_not_a_clean_end(streaming):
    body, ending = read_stream(streaming, "/stream/5?every=0.05&fail=1")
    assert ending == "IncompleteRead"
    assert b"line 4 " in body


def test_a_stream_that_ends_well_is_complete(streaming):
    body, ending = read_stream(streaming, "/stream/5?every=0.05")
    assert ending == "complete" and body.count(b"\n") == 5
