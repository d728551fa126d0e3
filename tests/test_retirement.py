"""A worker the watchdog retires (a request stuck past REQUEST_TIMEOUT, or
WORKER_MAX_MEMORY), in process (request/guards.py): it ends with uWSGI's own
exit, which waits for every answer, even one uWSGI still sends; where a
request answered 504 holds its thread for good, the watchdog ends it once
every other answer has gone; either way within its budget, past which it
is ended and the log names what still ran; its WebSockets are closed
(1001), and a look that fails does not end REQUEST_TIMEOUT for the
worker's life. The exit handlers' run: test_worker_exit.py."""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
import time

import pytest

from flaskbox.request import guards, serve, spool, stopping, streams
from flaskbox.request.admission import Gate
from flaskbox.request.deadline import Times
from flaskbox.sidecars import unix_sockets

LARGE = spool.Spool.MEMORY + 1  # past nginx's memory buffers: uWSGI sends it after the wrapper returns


class Recorder(guards.Watchdog):
    """Notes what it would do to its worker: nothing is stopped nor ended."""

    def __init__(self, timeout: float):
        super().__init__(timeout)
        self.left = self.quitted = False

    def _start(self) -> None:
        pass  # its looks are the test's: no thread of its own, left looking after the test

    def stop_taking_requests(self) -> None:
        pass

    def leave(self) -> None:
        self.left = True

    def quit(self) -> None:
        self.quitted = True


class Disk(spool.Spool):
    def __init__(self):
        super().__init__("/", 100 << 20, workers=2)

    def free(self) -> int:
        return 1 << 30


class Stuck:
    """A request answered 504 whose thread never comes back."""

    what = "GET /stuck"

    def __init__(self, at: float):
        self.expired_at = at


class Endless:
    """A neighbour that never ends: an event stream that keeps sending."""

    expired_at = None
    what = "GET /events"

    def elapsed(self, now: float) -> float:
        return 0.0


def test_a_worker_past_its_memory_cap_waits_for_an_answer_uwsgi_still_sends():
    dog = Recorder(2)

    def large(env, respond):
        respond("200 OK", [("Content-Length", str(LARGE))])
        return [b"x" * LARGE]

    served = serve.Serve(large, 2, spool=Disk(), worker_id=lambda: 1, watchdog=dog)
    body = served({"REQUEST_METHOD": "GET", "REQUEST_URI": "/x", "PATH_INFO": "/x"},
                  lambda status, headers, exc_info=None: None)
    assert not dog.running  # the answer is made: only uWSGI knows it is still being sent
    dog.memory.cap, dog.memory.over = 1 << 20, lambda now: 1 << 30
    now = time.monotonic()
    dog.look(now)
    assert dog.retiring == now
    dog.look(now + 1.0)
    assert not dog.left and not dog.quitted  # uWSGI's own exit comes once it is sent
    assert b"".join(body) == b"x" * LARGE
    body.close()


def test_a_stuck_workers_end_waits_for_its_neighbours_answers_to_go():
    dog = Recorder(2)
    gate = dog.gate = Gate(4, Times(2), running=dog.running)
    stopping.ENDING.remove(gate.end)
    now = time.monotonic()
    dog.running[111] = Stuck(now - 10)
    dog.retiring = now - 1.0
    gate.sent |= {111, 222}  # the watchdog's 504, and a neighbour's download its thread still sends
    dog.look(now)
    assert not dog.left
    gate.sent.discard(222)  # uWSGI's after-request hook: sent
    dog.look(now)
    assert dog.left


def test_a_retirement_past_its_budget_is_ended_and_the_log_names_what_still_ran(monkeypatch, capsys):
    monkeypatch.setattr(guards, "exit_budget", lambda: 0.5)
    dog = Recorder(2)
    dog.running[1] = Endless()
    now = time.monotonic()
    dog.retiring = now - 0.4
    dog.look(now)
    assert not dog.quitted
    dog.look(now + 0.2)
    assert dog.quitted and not dog.left
    said = capsys.readouterr().err
    assert "1 of its requests (their answers cut) still ran 0.5 s after its retirement began" in said
    assert "exit handlers" not in said


def test_a_retiring_workers_websockets_are_closed_going_away(monkeypatch):
    ended = []

    class Open:
        def end(self, reason: str) -> None:
            ended.append(reason)

    signals = []
    monkeypatch.setattr(guards.os, "kill", lambda pid, signum: signals.append(signum))
    monkeypatch.setitem(streams.OPEN.websockets, -7, Open())
    guards.Watchdog(2).stop_taking_requests()
    assert ended == ["the worker's retirement"] and signals == [guards.signal.SIGHUP]


def watching(times: int, each) -> tuple[list, threading.Event]:
    """A Recorder's own watch thread, looking every 0.01 s, each look calling
    each(its number): the looks, and an event set at the `times`-th, after
    which the thread sleeps for good."""
    dog = Recorder(2)
    dog.every = 0.01
    looks, looked = [], threading.Event()

    def look(now: float) -> None:
        looks.append(now)
        if len(looks) == times:
            dog.every = 3600.0
            looked.set()
        each(len(looks))

    dog.look = look
    threading.Thread(target=dog._watch, daemon=True).start()
    return looks, looked


def test_a_look_that_fails_is_logged_and_the_next_one_comes(capsys):
    def each(number: int) -> None:
        if number == 1:
            raise ValueError("I/O operation on closed file")

    looks, looked = watching(2, each)
    assert looked.wait(5) and len(looks) == 2
    said = capsys.readouterr().err
    assert "a look of the REQUEST_TIMEOUT watchdog failed, it looks again" in said and "ValueError" in said


def test_a_worker_retired_during_a_stop_is_not_said_to_be_replaced(monkeypatch, capsys):
    dog = Recorder(2)
    now = time.monotonic()
    dog.running[111] = Stuck(now - 10)
    dog.retiring = now - 1.0
    dog.look(now)
    said = capsys.readouterr().err
    assert dog.left and "retired: its other requests have ended; a fresh worker replaces it" in said
    monkeypatch.setattr(streams.OPEN, "stopping", True)
    monkeypatch.setattr(streams.OPEN, "occasion", "the stop")
    dog.look(now)
    assert "retired: its other requests have ended; it ends with the stop" in capsys.readouterr().err


class Closed(io.StringIO):
    """A stderr that can no longer be written (its pipe gone)."""

    def __init__(self):
        super().__init__()
        self.close()


def test_a_look_whose_line_cannot_be_written_does_not_end_the_watchdog(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Closed())
    _, looked = watching(3, lambda number: print("a look's line", file=sys.stderr, flush=True))
    assert looked.wait(5)


def test_a_retirement_past_its_budget_ends_even_when_its_line_cannot_be_written(monkeypatch):
    monkeypatch.setattr(guards, "exit_budget", lambda: 0.5)
    dog = Recorder(2)
    dog.retiring = time.monotonic() - 10
    monkeypatch.setattr(sys, "stderr", Closed())
    with pytest.raises(ValueError):
        dog.look(time.monotonic())
    assert dog.quitted


def test_a_retirement_held_past_its_budget_by_an_answer_still_sent_says_so(monkeypatch, capsys):
    monkeypatch.setattr(guards, "exit_budget", lambda: 0.5)
    dog = Recorder(2)
    gate = dog.gate = Gate(4, Times(2), running=dog.running)
    stopping.ENDING.remove(gate.end)
    gate.sent.add(222)  # a neighbour's spooled download to a slow client
    dog.retiring = time.monotonic() - 1.0
    dog.look(time.monotonic())
    said = capsys.readouterr().err
    assert dog.quitted and "1 answer(s) uWSGI was still sending (cut) still ran 0.5 s" in said, said
    assert "of its requests" not in said


def test_a_stuck_workers_end_waits_for_a_file_the_offload_thread_still_sends(tmp_path):
    # uWSGI's offload thread sends a file (send_file) on a connection no
    # request thread holds any more: leaving would cut it (seen: 24 of 40 MB).
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "uwsgi.sock"))
    listener.listen()
    clients = [socket.socket(socket.AF_UNIX) for _ in range(2)]
    for client in clients:
        client.connect(str(tmp_path / "uwsgi.sock"))
    (stuck, _), (download, _) = listener.accept(), listener.accept()
    dog = Recorder(2)
    dog.connections = lambda: unix_sockets.held_connections(os.getpid(), tmp_path)
    now = time.monotonic()
    dog.running[111] = Stuck(now - 10)
    dog.running[111].fd = stuck.fileno()  # answered 504; its connection stays uWSGI's
    dog.retiring = now - 1.0
    dog.look(now)
    assert not dog.left
    download.close()  # the offload thread's last byte sent
    dog.look(now)
    assert dog.left
    for sock in (stuck, listener, *clients):
        sock.close()
