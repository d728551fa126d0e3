"""A worker's event streams at a stop or a retirement, in process
(request/stopping.py, streams.py): told once, its WebSockets end and its
event streams go on, counted; told again at the budget's end, those still
open end cleanly (their last chunk); any other stream is never ended as if
complete; once all counted streams are over, one line says how they went.
The containers' side (the arbiter's timing, real clients) is
test_stream_finish.py's."""

from __future__ import annotations

import re
import time

import pytest

from flaskbox.request import serve, stopping, streams


def environ(uri: str) -> dict:
    return {"REQUEST_METHOD": "GET", "REQUEST_URI": uri}


def ignore_start(status, headers, exc_info=None):
    return lambda data: None


def stream(parts, content_type="text/event-stream", uri="/events"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type)])
        return iter(parts)
    return iter(serve.Serve(app, 5)(environ(uri), ignore_start))


class FakeWebSocket:
    owed = False  # no close frame waits behind the app's frame

    def __init__(self):
        self.ended = None

    def end(self, reason):
        self.ended = reason


@pytest.fixture
def told(tmp_path):
    """tell(seconds_left): the arbiter's streams-end file, by when, and the
    signal's handling; the worker's state back as it was afterwards."""
    end_file = tmp_path / "streams-end"
    streams.OPEN.end_file = str(end_file)

    def tell(seconds_left: float) -> list:
        end_file.write_text(f"{time.monotonic() + seconds_left}\tthe stop\tSTOP_TIMEOUT 10 s\n")
        return stopping.told()

    yield tell
    open_ = streams.OPEN
    open_.end_file, open_.stopping, open_.ended = None, False, False
    open_.counted.clear()
    open_.tally = {key: 0 for key in open_.tally}
    open_.websockets.clear()
    open_.streams.clear()  # a test's answer left unread


def chunks(body) -> list[bytes]:
    return list(body)


def test_at_the_first_notice_streams_go_on_and_websockets_end(told, capfd):
    answer = stream([b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"])
    assert next(answer) == b"9\r\ndata: 1\n\n\r\n"
    websocket = streams.OPEN.websockets[7] = FakeWebSocket()
    assert told(30) == []
    assert websocket.ended == "the stop"
    # The answer goes on to its own end, then its last chunk.
    rest = chunks(answer)
    assert rest[:2] == [b"9\r\ndata: 2\n\n\r\n", b"e\r\ndata: [DONE]\n\n\r\n"] and rest[2].startswith(b"0;")
    err = capfd.readouterr().err
    assert re.search(r"pid \d+: the stop: 1 WebSocket\(s\) closed \(1001, \"going away\"\); 1 event "
                     r"stream\(s\) may finish within 30 s \(STOP_TIMEOUT 10 s\)", err), err
    assert re.search(r"pid \d+: the 1 event stream\(s\) open at the stop \(STOP_TIMEOUT 10 s\): 1 finished$",
                     err, re.M), err


def test_at_the_budgets_end_the_streams_still_open_end_cleanly_and_an_export_goes_on(told, capfd):
    endless = stream([b"data: tick\n\n"] * 1000)
    finishing = stream([b"data: a\n\n", b"data: b\n\n"])
    export = stream([b"row\n"] * 3, "text/csv", "/export")
    for body in (endless, finishing, export):
        assert next(body)
    told(30)
    assert chunks(finishing)[-1].startswith(b"0;")
    ending = told(0)
    assert len(ending) == 1 and ending[0].reason == "the stop's budget (STOP_TIMEOUT 10 s) is nearly spent"
    # Between two parts: no more of them, its last chunk at once.
    rest = chunks(endless)
    assert len(rest) == 1 and rest[0].startswith(b"0;")
    # An export is the client's data: never ended as if complete.
    rows = chunks(export)
    assert rows[:2] == [b"4\r\nrow\n\r\n"] * 2 and rows[2].startswith(b"0;") and len(rows) == 3
    err = capfd.readouterr().err
    assert "ending the 1 event stream(s) still open, cleanly (their last chunk)" in err, err
    assert re.search(r"the 2 event stream\(s\) open at the stop \(STOP_TIMEOUT 10 s\): 1 finished, 1 ended "
                     r"unfinished, cleanly, a second before the budget's end$", err, re.M), err


def test_a_stream_opened_after_the_notice_is_counted_and_told_once(told, capfd):
    told(30)
    late = stream([b"data: x\n\n"] * 1000)
    assert next(late)
    assert len(told(0)) == 1
    assert told(0) == []  # the second signal of a stop during a retirement ends nothing twice
    assert chunks(late)[-1].startswith(b"0;")
    err = capfd.readouterr().err
    assert "the 1 event stream(s) open at the stop (STOP_TIMEOUT 10 s): 0 finished, 1 ended unfinished" in err


def test_a_stream_the_app_fails_is_counted_as_cut(told, capfd):
    def failing():
        yield b"data: 1\n\n"
        raise RuntimeError("the model's API went away")

    body = stream(failing())
    assert next(body)
    told(30)
    with pytest.raises(RuntimeError):
        next(body)
    err = capfd.readouterr().err
    assert "1 event stream(s) open at the stop (STOP_TIMEOUT 10 s): 0 finished, 1 cut" in err, err


def test_nothing_open_says_nothing_and_an_unreadable_file_ends_at_once(told, capfd):
    told(30)
    assert capfd.readouterr().err == ""
    streams.OPEN.stopping = False
    streams.OPEN.end_file = "/nonexistent/streams-end"
    body = stream([b"data: 1\n\n"] * 10)
    assert next(body)
    assert len(stopping.told()) == 1


def test_a_stream_a_limit_ends_during_the_stop_is_said_as_such(told, capfd):
    # gevent's STREAM_IDLE_TIMEOUT (120 s) comes well within RELOAD_GRACE
    # (300 s): its end is its own, not the budget's.
    def quiet():
        yield b"data: 1\n\n"
        raise streams.StreamEnd("nothing sent for STREAM_IDLE_TIMEOUT (120 s)")

    body = stream(quiet())
    assert next(body)
    told(30)
    assert chunks(body)[-1].startswith(b"0;")
    err = capfd.readouterr().err
    assert "event stream ended cleanly after 0 s: nothing sent for STREAM_IDLE_TIMEOUT (120 s)" in err, err
    assert "a second before the budget's end" not in err, err
    assert re.search(r"the 1 event stream\(s\) open at the stop \(STOP_TIMEOUT 10 s\): 0 finished, 1 ended "
                     r"cleanly before, by STREAM_IDLE_TIMEOUT or STREAM_MAX_DURATION$", err, re.M), err

