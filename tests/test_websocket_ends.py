"""A WebSocket's end at a stop or a retirement, in process
(request/websocket.py, stopping.py): its close frame (1001, "going away")
goes without waiting, never inside a frame the app is sending, and a
frame its client does not read is cut at the budget's end. Real clients
through nginx: test_websockets.py."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from flaskbox.request import stopping, streams
from flaskbox.request.websocket import CLOSE_GOING_AWAY, WebSocket


def frame(payload: bytes) -> bytes:
    """A server's binary frame (FIN, opcode 2, unmasked, 64-bit length)."""
    return b"\x82\x7f" + struct.pack(">Q", len(payload)) + payload


@pytest.fixture
def pair():
    """A taken WebSocket on one end of a socketpair (uWSGI's side) and the
    client's end, each with small buffers, so that a large frame waits."""
    ours, client = socket.socketpair()
    for end in (ours, client):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    websocket = WebSocket(ours.fileno(), "GET /ws")
    websocket.taken = True
    yield websocket, client
    websocket.sock.close()
    ours.close()
    client.close()


def sending(websocket: WebSocket, data: bytes) -> tuple[threading.Thread, list]:
    """The app's thread sending `data`, once it is in the middle of it (its
    client reads nothing yet); what the send raised, in the list."""
    raised: list = []

    def send() -> None:
        try:
            websocket.sendall(data)
        except OSError as exc:
            raised.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not websocket.sending.locked():
        assert thread.is_alive() and time.monotonic() < deadline, "the send never began"
        time.sleep(0.001)
    return thread, raised


def read_to_end(client: socket.socket) -> bytes:
    client.settimeout(10)
    received = bytearray()
    while chunk := client.recv(65536):
        received += chunk
    return bytes(received)


def shut_down(websocket: WebSocket) -> bool:
    """Whether the app's receive loop would end: its recv() finds the end."""
    websocket.sock.settimeout(10)
    try:
        return websocket.recv(1) == b""
    except TimeoutError:
        return False


def ends_at_once(websocket: WebSocket) -> None:
    started = time.monotonic()
    websocket.end("the stop")
    assert time.monotonic() - started < 1, "end() waited"


def test_the_close_frame_follows_the_frame_the_app_is_sending(pair):
    # Sent from the stop's thread at once, it landed inside the app's frame
    # (or, the buffers full, was not sent at all), and the client read garbage.
    websocket, client = pair
    data = frame(b"x" * 300_000)
    thread, raised = sending(websocket, data)
    ends_at_once(websocket)
    assert shut_down(websocket), "the app's receive loop would not end"
    assert read_to_end(client) == data + CLOSE_GOING_AWAY
    thread.join(10)
    assert not thread.is_alive() and not raised


def test_an_idle_websocket_gets_its_close_frame_and_its_end_at_once(pair):
    websocket, client = pair
    websocket.sendall(frame(b"hello"))
    ends_at_once(websocket)
    assert shut_down(websocket)
    assert read_to_end(client) == frame(b"hello") + CLOSE_GOING_AWAY
    with pytest.raises(OSError):
        websocket.sendall(frame(b"late"))


def test_a_frame_its_client_never_reads_is_cut_at_the_budgets_end(pair, tmp_path):
    # Its close frame owed, the app's send waits on a client that reads
    # nothing: at the budget's end it is cut, as an export is, and the
    # thread is free to end (else it held the worker until it was killed).
    websocket, client = pair
    thread, raised = sending(websocket, frame(b"x" * 300_000))
    end_file = tmp_path / "streams-end"
    streams.OPEN.end_file = str(end_file)
    streams.OPEN.websockets[websocket.fd] = websocket
    try:
        end_file.write_text(f"{time.monotonic() + 30}\tthe stop\tSTOP_TIMEOUT 30 s\n")
        stopping.told()  # the first notice: its close frame is owed
        assert websocket.owed and thread.is_alive()
        end_file.write_text(f"{time.monotonic()}\tthe stop\tSTOP_TIMEOUT 30 s\n")
        stopping.told()  # the budget's end
        thread.join(10)
        assert not thread.is_alive(), "the send still waits on a client that reads nothing"
        assert raised and isinstance(raised[0], OSError)
    finally:
        open_ = streams.OPEN
        open_.end_file, open_.stopping, open_.ended = None, False, False
        open_.websockets.clear()


def test_a_websocket_whose_client_stopped_reading_ends_without_waiting(pair):
    # Its buffers full, a close frame sent with sendall waited until nginx
    # gave the client up (the drain's end at a stop): the worker's handling
    # of the stop waited with it, and its event streams were cut, not ended.
    websocket, client = pair
    ours = websocket.sock
    while True:
        try:
            ours.send(b"x" * 65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
    ending = threading.Thread(target=websocket.end, args=("the stop",), daemon=True)
    ending.start()
    ending.join(60)  # waited, it would wait for ever: the minute is only there to fail
    assert not ending.is_alive()
    assert client.recv(1, socket.MSG_DONTWAIT)  # what was sent before is still there to read
    assert shut_down(websocket), "the app's receive loop would not end"
