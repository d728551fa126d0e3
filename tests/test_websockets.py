"""WebSockets through nginx to the app: a flask-sock echo round trip with
either worker class and in debug mode, and Flask-SocketIO's client: connect,
long-polling, then the upgrade to a WebSocket (WORKER_CLASS=gevent, which
Socket.IO needs). With more than one gevent process, each client is kept on
one process (by its address), so Socket.IO sessions hold."""

import os
import time

import pytest
import requests
import socketio
import websocket

MODES = ["sync", "gevent", "debug"]


@pytest.mark.parametrize("mode", MODES)
def test_websocket_echo_round_trip(realtime, mode, figure):
    c = realtime(mode)
    ws = websocket.create_connection(f"ws://127.0.0.1:{c.port}/ws", timeout=10)
    try:
        started = time.monotonic()
        ws.send("hello, flaskbox")
        assert ws.recv() == "hello, flaskbox"
        figure(f"{mode}: WebSocket echo round trip, ms", f"{(time.monotonic() - started) * 1000:.1f}")
        # Binary frames and a second message on the same connection.
        ws.send_binary(os.urandom(16) + b"end")
        assert ws.recv().endswith(b"end")
        ws.send("pid")
        assert ws.recv().isdigit()
    finally:
        ws.close()
    # The upgrade shows in the access log as a 101, not as an error.
    if mode != "debug":
        c.wait_until(lambda: '"GET /ws HTTP/1.1" 101' in c.logs(), "the 101 in the access log")
        assert "HTTP/1.1 500" not in c.logs()


class FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one loopback address: another client, as nginx sees it."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.source, 0), **kwargs)


def socketio_round_trip(port: int, transports: list[str], source: str | None = None) -> dict:
    """Connects, sends three echo events, returns what came back and how."""
    session = requests.Session()
    if source:
        session.mount("http://", FromAddress(source))
    client = socketio.Client(reconnection=False, http_session=session)
    answers = []
    client.on("echo", answers.append)
    client.connect(f"http://127.0.0.1:{port}", transports=transports, wait_timeout=10)
    try:
        for number in range(3):
            client.emit("echo", f"message {number}")
        deadline = time.monotonic() + 10
        while len(answers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"transport": client.transport(), "answers": answers}
    finally:
        client.disconnect()
        session.close()


def test_socketio_long_polling_then_the_upgrade(realtime):
    c = realtime("gevent")
    polled = socketio_round_trip(c.port, ["polling"])
    assert polled["transport"] == "polling"
    assert [answer["data"] for answer in polled["answers"]] == ["message 0", "message 1", "message 2"]
    upgraded = socketio_round_trip(c.port, ["polling", "websocket"])
    assert upgraded["transport"] == "websocket"
    assert len(upgraded["answers"]) == 3
    # Both transports in the access log; the WebSocket's line comes at its end.
    lines = ("GET /socket.io/?transport=polling", "POST /socket.io/?transport=polling",
             "GET /socket.io/?transport=websocket")
    c.wait_until(lambda: all(line in c.logs() for line in lines), "both transports in the access log")
    logs = c.logs()
    assert "Invalid session" not in logs, logs
    # Ended with a lingering close: a reset could cost the client the last
    # frames sent to it.
    assert "Connection reset by peer" not in logs, logs


def test_two_gevent_processes_keep_each_client_on_one(realtime):
    c = realtime("gevent", UWSGI_PROCESSES="2")
    pids_by_client = {}
    for number in range(2, 10):
        client = f"127.0.0.{number}"
        seen = {c.request("/busy?seconds=0", source=client).json()["pid"] for _ in range(5)}
        assert len(seen) == 1, f"{client} reached {seen}"
        pids_by_client[client] = seen.pop()
        # Socket.IO's long-polling session holds across its requests.
        result = socketio_round_trip(c.port, ["polling"], source=client)
        assert {answer["pid"] for answer in result["answers"]} == {pids_by_client[client]}
    # Both processes serve someone.
    assert len(set(pids_by_client.values())) == 2, pids_by_client
    assert "Invalid session" not in c.logs()
