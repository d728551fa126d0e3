"""The request path in process, without uWSGI, driven as uWSGI drives it:
through serve.Serve, which makes one request.Request per request. What
nginx says of a request, the per-request watchdog's answers and
retirement, chunked framing and its clean or failed end, and the wrapper
as a whole around a small WSGI app (the disk budget for spooled
responses: test_response_spool.py). Milliseconds each; the same
behaviours are proven against real containers in test_request_timeout.py
and test_slow_downloads.py."""

import socket
import threading
import time

import pytest

from flaskbox.request import framing, guards, request, serve, streams


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


def peer(waited: float = 0.0) -> str:
    """X-Flaskbox-Peer as nginx sends it, for a request passed on `waited` s ago."""
    return f"203.0.113.9 51234 8091 {time.time() - waited:.3f} 0 http"


def ignore_start(status, headers, exc_info=None):
    return lambda data: None


def current(served: serve.Serve) -> request.Request:
    """The request the calling thread's app is answering (the watchdog's note of it)."""
    return served.watchdog.running[threading.get_ident()]


def test_the_peer_and_the_time_in_the_queue_are_taken_once(monkeypatch):
    # The wall clock held still: the wait is nginx's stamp's, to the millisecond.
    monkeypatch.setattr(request, "time", lambda: 1_800_000_000.0)
    env = environ(HTTP_X_FLASKBOX_PEER="203.0.113.9 51234 8091 1799999997.500 0 http")
    taken = request.Request(serve.Serve(None, 5), env, ignore_start)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["SERVER_PORT"]) == ("203.0.113.9", "51234", "8091")
    assert taken.waited == 2.5 and "HTTP_X_FLASKBOX_PEER" not in env


@pytest.mark.parametrize("header", [None, "203.0.113.9 51234 8091", "203.0.113.9 51234 8091 soon"])
def test_without_a_time_nothing_counts_as_waited(header):
    env = environ(**({"HTTP_X_FLASKBOX_PEER": header} if header else {}))
    assert request.Request(serve.Serve(None, 5), env, ignore_start).waited == 0.0


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_stuck_request_is_answered_504_on_its_connection_and_its_worker_retires():
    ours, nginx = socket.socketpair()
    release = threading.Event()

    def stuck(environ, start_response):
        release.wait(10)  # ...and never comes back in time
        start_response("200 OK", [("Content-Length", "0")])
        return []

    dog = Recorder(0.2)
    served = serve.Serve(stuck, 0.2, watchdog=dog, connection_fd=ours.fileno)
    in_thread(lambda: served(environ(), ignore_start))
    nginx.settimeout(5)
    answer = nginx.recv(4096)
    assert answer.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n") and b"REQUEST_TIMEOUT (0.2 s)" in answer
    assert nginx.recv(4096) == b""  # shut down: nothing the handler writes later gets through
    # Still stuck a second later: no new requests, then (nothing else
    # running) the worker leaves.
    assert wait_for(dog.stopped, 3) and wait_for(dog.left, 3)
    release.set()
    ours.close()
    nginx.close()


def test_a_request_beside_a_stuck_one_keeps_its_worker_until_it_ends():
    stuck, _ = socket.socketpair()
    dog = Recorder(0.2)
    release, neighbour = threading.Event(), {}

    def app(environ, start_response):
        if environ["REQUEST_URI"] != "/neighbour":
            release.wait(10)
        neighbour["request"] = current(served)
        start_response("200 OK", [("Content-Length", "4")])
        return iter([b"ok", b"ok"])

    served = serve.Serve(app, 0.2, watchdog=dog, connection_fd=stuck.fileno)
    in_thread(lambda: served(environ(), ignore_start))
    deadline = time.monotonic() + 5
    while not served.watchdog.running and time.monotonic() < deadline:  # the stuck one has begun
        time.sleep(0.005)
    assert served.watchdog.running
    done = {}

    def beside():
        body = iter(served(environ(REQUEST_URI="/neighbour"), ignore_start))
        done["first"] = next(body)
        # Sent slowly (uWSGI writing to its client: no clock): the worker
        # retires meanwhile, and yet this one finishes.
        assert wait_for(dog.stopped, 3)
        done["rest"] = list(body)

    in_thread(beside).join(5)
    assert done == {"first": b"ok", "rest": [b"ok"]} and neighbour["request"].expired_at is None
    assert wait_for(dog.left, 3)  # only once the neighbour ended
    release.set()


def test_a_request_answered_as_the_watchdog_looks_is_left_to_its_answer():
    """The watchdog's look copies the registry, then expires each request
    past the timeout in turn: one whose thread answered it meanwhile is
    neither cut nor answered 504 (its connection is uWSGI's again, perhaps
    already another client's)."""
    ours, nginx = socket.socketpair()
    seen = {}

    def app(environ, start_response):
        seen["request"], seen["thread"] = current(served), threading.get_ident()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    dog = Recorder(30)
    served = serve.Serve(app, 30, watchdog=dog, connection_fd=ours.fileno)
    assert served(environ(), ignore_start) == [b"ok"]
    dog._expire(seen["request"], time.monotonic() + 60, seen["thread"])  # the look's copy, a moment old
    assert seen["request"].expired_at is None
    ours.sendall(b"next")  # the connection is whole, for whatever uWSGI sends on it next
    nginx.settimeout(5)
    assert nginx.recv(16) == b"next"
    ours.close()
    nginx.close()


def sized(parts, wait_before=0.0, wait_between=0.0, seen=None, served=None):
    """An app answering `parts` with a Content-Length, each made after a wait."""
    def app(environ, start_response):
        if seen is not None:
            seen["request"] = current(served())
        start_response("200 OK", [("Content-Length", str(sum(map(len, parts))))])

        def body():
            time.sleep(wait_before)
            for number, part in enumerate(parts):
                if number:
                    time.sleep(wait_between)
                yield part
        return body()
    return app


def test_time_writing_to_a_slow_client_does_not_count():
    seen = {}
    served = serve.Serve(sized([b"x"] * 4, 0.05, 0.05, seen, lambda: served), 0.3, watchdog=Recorder(0.3))
    sent = []
    body = served(environ(), ignore_start)
    for chunk in body:
        sent.append(chunk)
        time.sleep(0.15)  # uWSGI writing to a slow client: 0.6 s in all
    body.close()
    assert sent == [b"x"] * 4 and seen["request"].expired_at is None
    # Once the answer is under way, only the wait for its next part counts.
    assert seen["request"].used < 0.1


def test_a_body_that_keeps_sending_is_never_cut_however_long():
    seen = {}
    # 0.48 s of parts in all, more than twice the timeout, after 0.15 s in the queue.
    served = serve.Serve(sized([b"row\n"] * 12, 0.0, 0.04, seen, lambda: served), 0.2, watchdog=Recorder(0.2))
    assert list(served(environ(HTTP_X_FLASKBOX_PEER=peer(0.15)), ignore_start)) == [b"row\n"] * 12
    assert seen["request"].expired_at is None and seen["request"].claimed_by == "app"


def test_until_the_first_part_the_queue_and_the_handler_count_together():
    seen = {}
    # 0.45 s queued + 0.3 s to the first part: past 0.5 s, which neither is
    # alone. The watchdog looks every 0.1 s, so it sees the sum pass the
    # timeout twice before the part comes.
    served = serve.Serve(sized([b"late"], 0.3, 0.0, seen, lambda: served), 0.5, watchdog=Recorder(0.5))
    assert list(served(environ(HTTP_X_FLASKBOX_PEER=peer(0.45)), ignore_start)) == []
    assert seen["request"].expired_at is not None and seen["request"].claimed_by == "watchdog"


def test_a_body_past_the_timeout_stops_and_is_not_sent():
    seen = {}
    served = serve.Serve(sized([b"first", b"never sent"], 0.0, 0.4, seen, lambda: served), 0.1,
                         watchdog=Recorder(0.1))
    assert list(served(environ(), ignore_start)) == [b"first"]
    assert seen["request"].expired_at is not None and seen["request"].claimed_by == "app"


def test_time_in_the_queue_counts():
    seen = {}

    def app(environ, start_response):
        seen["request"] = current(served)
        time.sleep(0.1)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    served = serve.Serve(app, 1.0, watchdog=Recorder(1.0))
    served(environ(HTTP_X_FLASKBOX_PEER=peer(0.95)), ignore_start)
    assert seen["request"].elapsed(time.monotonic()) > 1.0


@pytest.mark.parametrize("timeout, every",
                         [(0.2, 0.1), (2, 0.1), (5, 0.25), (10, 0.5), (60, 0.5), (3600, 0.5)])
def test_the_watchdog_looks_often_enough_for_a_504_at_most_5_percent_late(timeout, every):
    # Each look takes Python's lock from the worker's request threads, so
    # the default timeout (30 s) is looked at twice a second, not ten times.
    assert guards.watch_every(timeout) == every
    assert guards.Watchdog(timeout).every == every


def test_only_one_side_claims_the_answer():
    claimed = request.Request(serve.Serve(None, 5), environ(), ignore_start)
    claimed.claimed_by = None
    assert claimed.claim("app") and not claimed.claim("watchdog") and claimed.claim("app")


def test_a_request_that_waited_too_long_is_refused_with_retry_after():
    status, headers, body = call(None, timeout=5, HTTP_X_FLASKBOX_PEER=peer(6))
    assert status.startswith("503") and headers["Retry-After"] == "5" and b"busy" in body


# --- framing: what start_response decides ------------------------------------

def answered(status, headers, method="GET", body=(b"x",)):
    """The status, headers and body bytes the wrapper sends for an app's answer."""
    def app(environ, start_response):
        start_response(status, headers)
        return iter(body)

    return call(app, REQUEST_METHOD=method)


@pytest.mark.parametrize("status, headers, method, framed", [
    ("200 OK", [("Content-Type", "text/plain")], "GET", True),  # a generator: no length
    ("200 OK", [("Content-Length", "1")], "GET", False),
    ("200 OK", [("Transfer-Encoding", "chunked")], "GET", False),  # the app framed it itself
    ("204 No Content", [], "GET", False),
    ("304 Not Modified", [], "GET", False),
    ("200 OK", [], "HEAD", False),
    ("101 Switching Protocols", [], "GET", False),
])
def test_only_a_body_without_a_length_is_chunked(status, headers, method, framed):
    _, sent, _ = answered(status, headers, method)
    assert ("X-Flaskbox-Framed" in sent) is framed
    assert (sent.get("Transfer-Encoding") == "chunked") is (framed or "Transfer-Encoding" in dict(headers))


@pytest.mark.parametrize("headers, extra", [
    ([("Content-Type", "text/event-stream"), ("Content-Length", "1")], "no"),  # an event stream, always
    ([("Content-Type", "text/plain")], "no"),  # a stream
    ([("Content-Type", "text/plain"), ("Content-Length", "1")], None),
    ([("X-Accel-Buffering", "yes")], "yes"),  # a stream whose app chose for itself
])
def test_streams_pass_nginx_unbuffered(headers, extra):
    assert answered("200 OK", headers)[1].get("X-Accel-Buffering") == extra


@pytest.mark.parametrize("size, status", [(61_000, "200 OK"), (61_200, "500 Internal Server Error"),
                                          (65_536, "500 Internal Server Error")])
def test_a_head_past_what_uwsgi_passes_whole_is_a_500_instead(size, status):
    # Past it uWSGI dropped the answer, or (64 KB and more) cut the header.
    got, sent, body = answered("200 OK", [("Content-Length", "1"), ("X-State", "s" * size)])
    whole = status == "200 OK"
    assert (got, body, "X-State" in sent) == (status, b"x" if whole else b"Internal Server Error\n", whole)


def stream_app(parts, content_type="text/plain"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type)])
        return parts() if callable(parts) else iter(parts)
    return app


def test_a_stream_is_chunked_and_ends_with_the_last_chunk():
    body = list(serve.Serve(stream_app([b"one", b"", b"three"]), 5)(environ(), ignore_start))
    assert body[:2] == [b"3\r\none\r\n", b"5\r\nthree\r\n"]
    # The last chunk, padded with an extension so that the whole body is a
    # length nginx takes for a stream that ended well (nginx.conf).
    assert body[2].startswith(b"0;") and body[2].endswith(b"\r\n\r\n") and len(body) == 3
    assert sum(map(len, body)) % framing.WHOLE_EVERY == 0


def test_a_stream_that_fails_never_gets_the_last_chunk():
    def failing():
        yield b"one"
        raise RuntimeError("the database went away")

    body = iter(serve.Serve(stream_app(failing), 5)(environ(), ignore_start))
    assert next(body) == b"3\r\none\r\n"
    with pytest.raises(RuntimeError):
        next(body)


def test_a_stream_cut_by_its_limits_gets_no_last_chunk():
    def stalling():
        yield b"one"
        # What gevent's STREAM_IDLE_TIMEOUT raises where the generator waits.
        raise streams.StreamCut("nothing sent for STREAM_IDLE_TIMEOUT (1 s)")

    body = list(serve.Serve(stream_app(stalling), 5)(environ(), ignore_start))
    assert body == [b"3\r\none\r\n"]


def test_event_streams_are_told_apart():
    assert answered("200 OK", [("Content-Type", "text/event-stream; charset=utf-8"),
                               ("Content-Length", "1")])[1].get("X-Accel-Buffering") == "no"
    assert "X-Accel-Buffering" not in answered("200 OK", [("Content-Type", "text/csv"),
                                                          ("Content-Length", "1")])[1]


# --- the wrapper as a whole, without uWSGI ------------------------------------

def call(app, timeout: float = 5, **environ_extra):
    """Serve(app) for one GET: (status, headers, body bytes)."""
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered.update(status=status, headers=headers)
        return lambda data: None

    result = serve.Serve(app, timeout=timeout)(environ(**environ_extra), start_response)
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
