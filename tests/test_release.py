"""What a request holds until its answer has gone (its place in the
watchdog's registry, the spool's bytes, its client's share of threads, a
WebSocket's copy of its connection) goes back on every way out, in process
(request/body.py's release): an exception after start_response, a list
made past REQUEST_TIMEOUT, a WebSocket or an answer whose close() raises,
an app that wrote and then raised (logged as the cut it is, not as a 500).
The gate's place on each way out: test_gate_path.py."""

from __future__ import annotations

import socket
import threading
import time

import flask
import pytest
from werkzeug.test import EnvironBuilder

from flaskbox.request import guards, outbound, serve, spool, streams

LARGE = spool.Spool.MEMORY + 1  # past nginx's memory buffers: counted in the spool's budget
CLIENT = "203.0.113.9"


class Disk(spool.Spool):
    def __init__(self):
        super().__init__("/", 100 << 20, workers=2)

    def free(self) -> int:
        return 1 << 30


class Watchdog(guards.Watchdog):
    """One whose worker neither stops taking requests nor leaves."""

    def stop_taking_requests(self) -> None:
        pass

    def leave(self) -> None:
        pass


def environ(**extra) -> dict:
    return {"REQUEST_METHOD": "GET", "REQUEST_URI": "/x", "PATH_INFO": "/x", **extra}


def start(status, headers, exc_info=None):
    return lambda data: None


def drained(body) -> bytes:
    """As uWSGI: every part, then close()."""
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


def test_a_flask_teardown_that_fails_after_a_large_answer_gives_the_spool_back():
    app = flask.Flask(__name__)
    app.route("/x")(lambda: b"x" * LARGE)

    @app.teardown_request
    def fails(exc):
        raise RuntimeError("the session's close failed")

    disk = Disk()
    request = EnvironBuilder(path="/x").get_environ()
    request["REQUEST_URI"] = "/x"
    said = []
    body = serve.Serve(app, 5, spool=disk, worker_id=lambda: 1, watchdog=Watchdog(5))(
        request, lambda status, headers, exc_info=None: said.append(status))
    assert b"Internal Server Error" in drained(body) and said[-1].startswith("500")
    assert disk.pending[1] == 0


def test_a_list_made_past_request_timeout_gives_the_spool_back():
    def app(env, respond):
        time.sleep(0.5)  # past its 0.2 s: the watchdog answers 504 meanwhile
        respond("200 OK", [("Content-Length", str(LARGE))])
        return [b"x" * LARGE]

    disk = Disk()
    served = serve.Serve(app, 0.2, spool=disk, worker_id=lambda: 1, watchdog=Watchdog(0.2))
    assert drained(served(environ(), start)) == b""
    assert disk.pending[1] == 0


def test_a_websocket_whose_close_raises_gives_back_its_connection_registration_and_share():
    share, (ours, nginx) = outbound.Share(80, 1, 4), socket.socketpair()

    class Result(list):
        def close(self):
            raise RuntimeError("the app's close()")

    def app(env, respond):
        env["werkzeug.socket"].sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        return Result()

    fd = ours.fileno()
    served = serve.Serve(app, 5, share=share, connection_fd=ours.fileno, watchdog=Watchdog(5))
    try:
        with pytest.raises(RuntimeError):
            served(environ(HTTP_UPGRADE="websocket", REMOTE_ADDR=CLIENT), start)
        ours.close()  # uWSGI's own descriptor
        nginx.settimeout(5)
        assert nginx.recv(100).startswith(b"HTTP/1.1 101")
        assert nginx.recv(100) == b""  # no copy of the connection holds it open
        assert fd not in streams.OPEN.websockets and not any(share.values)
    finally:
        kept = streams.OPEN.websockets.pop(fd, None)
        if kept is not None:
            kept.sock.close()
        nginx.close()


def test_an_answer_whose_close_raises_leaves_the_watchdogs_registry():
    class Parts:
        def __iter__(self):
            return iter([b"ab", b"cd"])

        def close(self):
            raise RuntimeError("the app's close()")

    def app(env, respond):
        respond("200 OK", [("Content-Length", "4")])
        return Parts()

    served = serve.Serve(app, 5, watchdog=Watchdog(5))
    raised = []

    def one():
        try:
            drained(served(environ(), start))
        except RuntimeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=one)
    thread.start()
    thread.join(5)
    assert raised and not served.watchdog.running  # (left, a retiring worker would wait for it for good)


def test_an_app_that_wrote_then_raised_gives_its_share_back_and_is_logged_as_cut(capsys):
    share, sent = outbound.Share(80, 1, 4), []

    def uwsgi_start(status, headers, exc_info=None):
        if sent:
            raise OSError("headers already sent")  # uWSGI, once the head has gone
        return sent.append

    def app(env, respond):
        respond("200 OK", [("Content-Type", "text/plain")])(b"partial")
        raise RuntimeError("the app's own")

    served = serve.Serve(app, 5, share=share, watchdog=Watchdog(5))
    assert served(environ(REMOTE_ADDR=CLIENT), uwsgi_start) == []
    assert not any(share.values)
    logged = capsys.readouterr()
    assert "after its answer had begun: cut" in logged.err + logged.out
    assert "answered 500" not in logged.err + logged.out
