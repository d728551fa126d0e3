"""ADAPTIVE_THREADS' gate on the request path, in process (serve.Serve with
an admission.Gate, driven as uWSGI drives it): a request holds its place
from being let in to its answer's start, and gives it back on every way
out (the usual answer, a stream handed back, an exception); one over the
limit waits for it and then runs, or is refused with 503 once its kind's
usual time no longer fits REQUEST_TIMEOUT; the gate needs no watchdog
thread. The rule itself: test_admission.py."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from flaskbox.request import admission, deadline, guards, outbound, serve, streams
from flaskbox.request.deadline import Times

TIMEOUT = 5.0


def environ(path: str = "/x") -> dict:
    return {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": path}


def start(status, headers, exc_info=None):
    start.status = status
    return lambda data: None


class NoThread(guards.Watchdog):
    """A worker that could not start its watchdog's thread (the pids limit)."""

    def _start(self) -> None:
        raise AssertionError("the gate must not need it")

    def new_worker(self) -> None:
        self.started = True


def gated(app, threads: int = 4) -> serve.Serve:
    watchdog = NoThread(TIMEOUT)
    gate = admission.Gate(threads, Times(TIMEOUT), running=watchdog.running)
    return serve.Serve(app, TIMEOUT, gate=gate, watchdog=watchdog)


def answer(body: bytes = b"ok"):
    def app(env, respond):
        respond("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return app


def test_the_usual_answer_gives_its_place_back_and_its_kind_learns_its_time_alone():
    served = gated(answer())
    for _ in range(3):
        assert served(environ("/users/7"), start) == [b"ok"]
    gate = served.gate
    assert gate.inside == 0 and not gate.places
    kind = gate.times.kinds["GET /users/#"]
    assert kind.alone > 0 and kind.usual > 0


def test_every_way_out_gives_the_place_back():
    def stream(env, respond):
        respond("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a", b"b"])

    def fails(env, respond):
        raise RuntimeError("the app's own")

    for app in (stream, fails):
        served = gated(app)
        body = served(environ(), start)
        assert served.gate.inside == 0, app.__name__  # given back as the answer began, before its body
        if hasattr(body, "close"):
            list(body)
            body.close()
        assert served.gate.inside == 0 and not served.gate.places


def test_a_request_over_the_limit_waits_for_a_place_and_then_runs():
    release = threading.Event()

    def app(env, respond):
        if env["PATH_INFO"] == "/slow":
            release.wait(5)
        return answer()(env, respond)

    served = gated(app)
    assert served.gate.limit == 1  # a new worker's first requests run alone
    first = threading.Thread(target=served, args=(environ("/slow"), start))
    first.start()
    until(lambda: served.gate.inside == 1)
    second: list = []
    waiting = threading.Thread(target=lambda: second.append(served(environ("/fast"), start)))
    waiting.start()
    until(lambda: len(served.gate.line) == 1)
    release.set()
    waiting.join(5)
    first.join(5)
    assert second == [[b"ok"]] and served.gate.inside == 0


def test_one_that_could_no_longer_be_answered_in_time_is_refused_with_503():
    release = threading.Event()

    def app(env, respond):
        release.wait(5)
        return answer()(env, respond)

    served = gated(app)
    slow = served.gate.times.of("GET /x")
    for _ in range(2):  # (the first is its set-up, kept apart)
        served.gate.times.took(slow, TIMEOUT - 0.1, False, time.monotonic())  # usual: 4.9 of 5 s
    first = threading.Thread(target=served, args=(environ(), start))
    first.start()
    until(lambda: served.gate.inside == 1)
    said = []
    began = time.monotonic()
    refused = served(environ(), lambda status, headers, exc_info=None: said.append(status))
    waited = time.monotonic() - began
    release.set()
    first.join(5)
    assert said == ["503 Service Unavailable"] and b"try again later" in b"".join(refused)
    assert waited < 1.0  # the 0.1 s it had left (a window's look), and no more


def test_an_upgrade_refused_with_503_gives_back_its_share_of_threads_and_its_connection():
    """A WebSocket upgrade takes its client's share of threads and a copy of
    its connection before it waits for a place: refused, it gives both back
    (kept, a client that retried under overload would have used up its
    address's share in every worker: 503 to all its streams)."""
    release = threading.Event()

    def app(env, respond):
        release.wait(5)
        return answer()(env, respond)

    watchdog = NoThread(TIMEOUT)
    gate = admission.Gate(4, Times(TIMEOUT), running=watchdog.running)
    share = outbound.Share(80, 1, 4)
    ours, nginx = socket.socketpair()
    served = serve.Serve(app, TIMEOUT, gate=gate, watchdog=watchdog, share=share,
                         connection_fd=ours.fileno)
    slow = gate.times.of("GET /x")
    for _ in range(2):
        gate.times.took(slow, TIMEOUT - 0.1, False, time.monotonic())  # usual: 4.9 of 5 s
    client = {**environ(), "REMOTE_ADDR": "203.0.113.9"}
    first = threading.Thread(target=served, args=(dict(client), start))
    first.start()
    until(lambda: gate.inside == 1)
    said = []
    refused = served({**client, "HTTP_UPGRADE": "websocket"},
                     lambda status, headers, exc_info=None: said.append(status))
    release.set()
    first.join(5)
    try:
        assert said == ["503 Service Unavailable"] and b"try again later" in b"".join(refused)
        assert not any(share.values), list(share.values)
        assert ours.fileno() not in streams.OPEN.websockets
    finally:
        kept = streams.OPEN.websockets.pop(ours.fileno(), None)
        if kept is not None:
            kept.sock.close()
        ours.close()
        nginx.close()


def until(condition, within: float = 5.0) -> None:
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "not within the time allowed"
        time.sleep(0.001)


@pytest.fixture(autouse=True)
def no_watchdog_started():
    """The gate worked without one (NoThread would have failed its start)."""
    before = {thread.ident for thread in threading.enumerate() if thread.name == "flaskbox-watchdog"}
    yield
    assert {thread.ident for thread in threading.enumerate() if thread.name == "flaskbox-watchdog"} <= before


def test_a_request_refused_as_it_gets_its_place_gives_it_back_and_leaves_no_time(monkeypatch):
    monkeypatch.setattr(serve, "GONE_AFTER", 0.0)  # looked at again however short its wait
    release = threading.Event()

    def app(env, respond):
        release.wait(5)
        return answer()(env, respond)

    served = gated(app)
    first = threading.Thread(target=served, args=(environ(), start))
    first.start()
    until(lambda: served.gate.inside == 1)
    refused: list = []
    waiting = threading.Thread(target=lambda: refused.append(served(environ(), start)))
    waiting.start()
    until(lambda: len(served.gate.line) == 1)
    times = served.gate.times
    for _ in range(2):  # (the first is its set-up, kept apart)
        times.took(times.of("GET /x"), 2 * TIMEOUT, False, time.monotonic())  # now past the timeout
    counted: list = []
    took = times.took
    monkeypatch.setattr(times, "took", lambda *args: counted.append(args[1]) or took(*args))
    release.set()
    first.join(5)
    waiting.join(5)
    assert b"try again later" in b"".join(refused[0])
    assert served.gate.inside == 0 and not served.gate.places
    assert len(counted) == 1  # the first's own time: the refused one left none


def test_a_kind_is_the_apps_route_however_many_paths_it_answers():
    import flask

    app = flask.Flask(__name__)

    @app.get("/dataset/<name>")
    def dataset(name):
        return f"dataset {name}"

    times = Times(TIMEOUT, routed=True)
    served = serve.Serve(app, TIMEOUT, gate=admission.Gate(4, times), watchdog=NoThread(TIMEOUT))
    def get(path: str) -> dict:
        return {**environ(path), "wsgi.url_scheme": "http", "SERVER_NAME": "localhost", "SERVER_PORT": "80"}

    for name in ("census-2020", "rivers", "census-2020", "air-quality"):
        assert served(get(f"/dataset/{name}"), start) == [f"dataset {name}".encode()]
    served(get("/nowhere"), start)
    assert set(times.kinds) == {"GET /dataset/<name>", "GET (no route)"}
    assert times.at_entry(environ("/dataset/rivers")) is times.kinds["GET /dataset/<name>"]
    assert times.at_entry(environ("/dataset/new-one")) is deadline.PENDING  # its route known once it ran
    # A path seen before is looked up as it came; one whose route is not
    # known yet is not kept so, and is found as its route once it ran.
    assert ("GET", "/dataset/rivers") in times.seen and ("GET", "/dataset/new-one") not in times.seen
    assert served(get("/dataset/new-one"), start) == [b"dataset new-one"]
    assert times.at_entry(environ("/dataset/new-one")) is times.kinds["GET /dataset/<name>"]
