"""The request path in process, without uWSGI (lib/flaskbox/serve.py and
the modules it calls): what nginx says of a request, the per-request
watchdog's answers and retirement, the disk budget for spooled responses,
files handed back to uWSGI untouched, chunked framing and its clean or
failed end, and the wrapper as a whole around a small WSGI app. Milliseconds each; the same behaviours are
proven against real containers in test_request_timeout.py and
test_slow_downloads.py."""

import os
import socket
import threading
import time

import pytest

from flaskbox import framing, guards, prelude, serve, spool, streams


class Recorder(guards.Watchdog):
    """A watchdog that notes what it would do to its worker."""

    def __init__(self, timeout: float):
        super().__init__(timeout)
        self.stopped = threading.Event()
        self.left = threading.Event()

    def stop_taking_requests(self) -> None:
        self.stopped.set()

    def leave(self) -> None:
        self.left.set()


def environ(**extra) -> dict:
    return {"REQUEST_METHOD": "GET", "REQUEST_URI": "/x", **extra}


def wait_for(event: threading.Event, seconds: float) -> bool:
    return event.wait(seconds)


def test_the_prelude_takes_the_peer_and_the_time_in_the_queue():
    env = environ(HTTP_X_FLASKBOX_PEER=f"203.0.113.9 51234 8091 {time.time() - 2.5:.3f}")
    waited = prelude.proxy_prelude(env)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["SERVER_PORT"]) == ("203.0.113.9", "51234", "8091")
    assert 2.4 < waited < 3.0 and "HTTP_X_FLASKBOX_PEER" not in env


@pytest.mark.parametrize("peer", [None, "203.0.113.9 51234 8091", "203.0.113.9 51234 8091 soon"])
def test_without_a_time_nothing_counts_as_waited(peer):
    env = environ(**({"HTTP_X_FLASKBOX_PEER": peer} if peer else {}))
    assert prelude.proxy_prelude(env) == 0.0


def test_a_stuck_request_is_answered_504_on_its_connection_and_its_worker_retires():
    ours, nginx = socket.socketpair()
    dog = Recorder(0.2)
    dog.begin(environ(), ours.fileno(), 0.0).enter()  # ...and never comes back
    nginx.settimeout(5)
    answer = nginx.recv(4096)
    assert answer.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n") and b"REQUEST_TIMEOUT (0.2 s)" in answer
    assert nginx.recv(4096) == b""  # shut down: nothing the handler writes later gets through
    # Still stuck a second later: no new requests, then (nothing else
    # running) the worker leaves.
    assert wait_for(dog.stopped, 3) and wait_for(dog.left, 3)
    ours.close()
    nginx.close()


def test_a_request_beside_a_stuck_one_keeps_its_worker_until_it_ends():
    stuck, _ = socket.socketpair()
    dog = Recorder(0.2)
    dog.begin(environ(), stuck.fileno(), 0.0).enter()
    neighbour = {}

    def beside():
        watched = dog.begin(environ(REQUEST_URI="/neighbour"), None, 0.0)
        neighbour["watched"] = watched
        assert wait_for(dog.stopped, 3)  # retiring: and yet this one finishes
        dog.end()

    thread = threading.Thread(target=beside)
    thread.start()
    thread.join(5)
    assert dog.stopped.is_set() and not neighbour["watched"].expired
    assert wait_for(dog.left, 3)  # only once the neighbour ended


def test_time_writing_to_a_slow_client_does_not_count():
    dog = Recorder(0.3)
    watched = dog.begin(environ(), None, 0.0)

    def body():
        for _ in range(4):
            time.sleep(0.05)  # the app's own work: 0.2 s in all
            yield b"x"

    sent = []
    for chunk in dog.watch(body(), watched):
        sent.append(chunk)
        time.sleep(0.15)  # uWSGI writing to a slow client: 0.6 s in all
    assert sent == [b"x"] * 4 and not watched.expired
    # Once the answer is under way, only the wait for its next part counts.
    assert watched.used < 0.1


def test_a_body_that_keeps_sending_is_never_cut_however_long():
    dog = Recorder(0.2)
    watched = dog.begin(environ(), None, 0.15)  # it waited in the queue first

    def body():
        for _ in range(12):
            time.sleep(0.04)  # 0.48 s in all, more than twice the timeout
            yield b"row\n"

    assert list(dog.watch(body(), watched)) == [b"row\n"] * 12
    assert not watched.expired and watched.claimed_by == "app"


def test_until_the_first_part_the_queue_and_the_handler_count_together():
    dog = Recorder(0.5)
    watched = dog.begin(environ(), None, 0.45)

    def body():
        # 0.45 s queued + 0.3 s to the first part: past 0.5 s, which neither
        # is alone. The watchdog looks every 0.1 s, so it sees the sum pass
        # the timeout twice before the part comes (one look apart, the
        # test raced the look: CI lost it once).
        time.sleep(0.3)
        yield b"late"

    assert list(dog.watch(body(), watched)) == []
    assert watched.expired and watched.claimed_by == "watchdog"


def test_a_body_past_the_timeout_stops_and_is_not_sent():
    dog = Recorder(0.1)
    watched = dog.begin(environ(), None, 0.0)

    def body():
        yield b"first"
        time.sleep(0.4)
        yield b"never sent"

    assert list(dog.watch(body(), watched)) == [b"first"]
    assert watched.expired and watched.claimed_by == "app"


def test_time_in_the_queue_counts():
    dog = Recorder(1.0)
    watched = dog.begin(environ(), None, 0.95)
    watched.enter()
    time.sleep(0.1)
    watched.leave()
    assert watched.elapsed(time.monotonic()) > 1.0


@pytest.mark.parametrize("timeout, every",
                         [(0.2, 0.1), (2, 0.1), (5, 0.25), (10, 0.5), (60, 0.5), (3600, 0.5)])
def test_the_watchdog_looks_often_enough_for_a_504_at_most_5_percent_late(timeout, every):
    # Each look takes Python's lock from the worker's request threads, so
    # the default timeout (30 s) is looked at twice a second, not ten times.
    assert guards.watch_every(timeout) == every
    assert guards.Watchdog(timeout).every == every


def test_only_one_side_claims_the_answer():
    watched = guards.Watched("GET /x", None, 0.0)
    assert watched.claim("app") and not watched.claim("watchdog") and watched.claim("app")


def test_a_request_that_waited_too_long_is_refused_with_retry_after():
    answered = {}
    body = prelude.waited_too_long(lambda status, headers: answered.update(status=status, headers=headers))
    assert answered["status"].startswith("503") and ("Retry-After", "5") in answered["headers"]
    assert b"busy" in b"".join(body)


class FakeDisk(spool.Spool):
    """A Spool over a file system whose free space the test sets."""

    def __init__(self, space: int, free: int):
        self.free_now = free
        super().__init__("/", space, workers=2)

    def free(self) -> int:
        return self.free_now


MB = 1 << 20


def test_the_spool_admits_what_fits_counting_what_is_still_to_be_written():
    disk = FakeDisk(space=100 * MB, free=1000 * MB)
    assert disk.admits(60 * MB, worker=1)
    # Nothing on disk yet, but 60 MB is on its way: 60 more do not fit.
    assert not disk.admits(60 * MB, worker=2)
    assert disk.admits(30 * MB, worker=2)
    # Written: now the disk itself shows it.
    disk.written(60 * MB, worker=1)
    disk.free_now -= 60 * MB
    assert not disk.admits(20 * MB, worker=1) and disk.admits(5 * MB, worker=1)


def test_small_responses_never_count():
    disk = FakeDisk(space=0, free=0)
    assert disk.admits(spool.Spool.MEMORY, worker=1)


def test_a_new_worker_clears_what_its_predecessor_left_pending():
    disk = FakeDisk(space=100 * MB, free=1000 * MB)
    disk.pending[1] = 90 * MB  # a worker killed mid-response
    disk.pid = -1  # this process is a new worker with the same id
    assert disk.admits(90 * MB, worker=1)


def test_a_spooled_body_is_counted_as_written_once_closed():
    done = []
    body = spool.Spooled([b"a", b"b"], lambda: done.append(True))
    assert list(body) == [b"a", b"b"] and done == []
    body.close()
    assert done == [True]


def test_a_file_from_wsgi_file_wrapper_is_recognised():
    handed = object()
    env = {"wsgi.file_wrapper": lambda filelike, *args: handed}
    files = spool.FileResponses(env)
    assert env["wsgi.file_wrapper"](open(os.devnull, "rb")) is handed
    assert files.holds(handed) and not files.holds([b"other"])


# --- framing: what start_response decides ------------------------------------

@pytest.mark.parametrize("status, headers, method, framed", [
    ("200 OK", [("Content-Type", "text/plain")], "GET", True),  # a generator: no length
    ("200 OK", [("Content-Length", "5")], "GET", False),
    ("200 OK", [("Transfer-Encoding", "chunked")], "GET", False),  # the app framed it itself
    ("204 No Content", [], "GET", False),
    ("304 Not Modified", [], "GET", False),
    ("200 OK", [], "HEAD", False),
    ("101 Switching Protocols", [], "GET", False),
])
def test_only_a_body_without_a_length_is_chunked(status, headers, method, framed):
    assert framing.needs_framing(status, headers, method) is framed


@pytest.mark.parametrize("headers, framed, extra", [
    ([("Content-Type", "text/event-stream")], False, [("X-Accel-Buffering", "no")]),
    ([("Content-Type", "text/plain")], True, [("X-Accel-Buffering", "no")]),
    ([("Content-Type", "text/plain")], False, []),
    ([("X-Accel-Buffering", "yes")], True, []),  # the app chose for itself
])
def test_streams_pass_nginx_unbuffered(headers, framed, extra):
    assert framing.unbuffered(headers, framed) == extra


def test_a_stream_is_chunked_and_ends_with_the_last_chunk():
    reply = framing.Reply(chunked=True)
    body = list(streams.flow(iter([b"one", b"", b"three"]), "GET /s", None, reply))
    assert body[:2] == [b"3\r\none\r\n", b"5\r\nthree\r\n"]
    # The last chunk, padded with an extension so that the whole body is a
    # length nginx takes for a stream that ended well (nginx.conf).
    assert body[2].startswith(b"0;") and body[2].endswith(b"\r\n\r\n") and len(body) == 3
    assert sum(map(len, body)) % framing.WHOLE_EVERY == 0


def test_a_stream_that_fails_never_gets_the_last_chunk():
    def failing():
        yield b"one"
        raise RuntimeError("the database went away")

    body = streams.flow(failing(), "GET /s", None, framing.Reply(chunked=True))
    assert next(body) == b"3\r\none\r\n"
    with pytest.raises(RuntimeError):
        next(body)


def test_a_stop_or_a_reload_ends_event_streams_only():
    event, export = framing.Reply(chunked=True, event_stream=True), framing.Reply(chunked=True)
    events = streams.flow(iter([b"data: 1\n\n"] * 100), "GET /events", None, event)
    rows = streams.flow(iter([b"row\n"] * 3), "GET /export", None, export)
    assert next(events) and next(rows)
    assert streams.OPEN.end_all("a test") is None
    try:
        # The event stream ends at once, cleanly (its last chunk); the export
        # goes on to its own end.
        assert next(events).startswith(b"0;") and list(events) == []
        assert list(rows)[:2] == [b"4\r\nrow\n\r\n"] * 2
    finally:
        streams.OPEN.stopping = False


def test_a_stream_cut_by_its_limits_gets_no_last_chunk():
    def stalling():
        yield b"one"
        # What gevent's STREAM_IDLE_TIMEOUT raises where the generator waits.
        raise streams.StreamCut("nothing sent for STREAM_IDLE_TIMEOUT (1 s)")

    body = list(streams.flow(stalling(), "GET /export", None, framing.Reply(chunked=True)))
    assert body == [b"3\r\none\r\n"]


def test_event_streams_are_told_apart():
    assert framing.is_event_stream([("Content-Type", "text/event-stream; charset=utf-8")])
    assert not framing.is_event_stream([("Content-Type", "text/csv")])


# --- the wrapper as a whole, without uWSGI ------------------------------------

def call(app, **environ_extra):
    """Serve(app) for one GET: (status, headers, body bytes)."""
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered.update(status=status, headers=headers)
        return lambda data: None

    result = serve.Serve(app, timeout=5)(environ(**environ_extra), start_response)
    body = b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return answered["status"], dict(answered["headers"]), body


def test_a_generator_response_leaves_chunked_and_unbuffered():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a", b"bc"])

    status, headers, body = call(app)
    assert status == "200 OK" and headers["Transfer-Encoding"] == "chunked"
    assert headers["X-Accel-Buffering"] == "no" and headers["X-Flaskbox-Framed"] == "1"
    assert body.startswith(b"1\r\na\r\n2\r\nbc\r\n0;") and len(body) % framing.WHOLE_EVERY == 0


def test_a_response_with_a_length_leaves_as_it_is():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    assert call(app) == ("200 OK", {"Content-Length": "2"}, b"ok")


def test_the_client_address_reaches_the_app_and_the_health_check_does_not():
    seen = {}

    def app(environ, start_response):
        seen.update(addr=environ["REMOTE_ADDR"])
        start_response("200 OK", [("Content-Length", "0")])
        return []

    call(app, HTTP_X_FLASKBOX_PEER=f"198.51.100.7 4000 80 {time.time():.3f}")
    assert seen == {"addr": "198.51.100.7"}
    assert call(app, REQUEST_URI="/-/healthy")[2] == b"ok\n" and len(seen) == 1
