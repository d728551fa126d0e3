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


def test_a_websocket_outlives_request_timeout_once_open(realtime):
    # REQUEST_TIMEOUT watches an upgrade until the app takes the connection;
    # from then on the WebSocket lives as long as it is used (with sync
    # workers nginx closes one silent for REQUEST_TIMEOUT + 2 s).
    c = realtime("sync", REQUEST_TIMEOUT="2")
    ws = websocket.create_connection(f"ws://127.0.0.1:{c.port}/ws", timeout=10)
    try:
        # Echoes back to back for 5 s: never silent, open past the timeout.
        opened, echoed = time.monotonic(), 0
        while time.monotonic() - opened < 5:
            ws.send(f"message {echoed}")
            assert ws.recv() == f"message {echoed}"
            echoed += 1
    finally:
        ws.close()
    assert "past REQUEST_TIMEOUT" not in c.logs(), c.logs()[-2000:]


BARE_UPGRADE = {"Upgrade": "websocket"}  # not listed in Connection: asks for nothing
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
UPGRADES = (BARE_UPGRADE, UPGRADE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("headers, path, status, text", [
    (BARE_UPGRADE, "/page", 200, "an ordinary page"),
    (UPGRADE, "/page", 400, "Bad Request"),
    (UPGRADE, "/no-such-route", 404, "Not Found"),
], ids=["bare-upgrade", "upgrade", "upgrade-404"])
def test_an_upgrade_asked_of_an_ordinary_flask_route_gets_flasks_answer(realtime, mode, headers, path, status,
                                                                       text):
    # Any client may ask any route for a WebSocket. Werkzeug answers a
    # route that is not one with 400 (WebSocketMismatch), the same in every
    # mode: the app's answer, never a 5xx.
    c = realtime(mode)
    resp = requests.get(f"http://127.0.0.1:{c.port}{path}", headers=headers, timeout=10)
    assert resp.status_code == status and text in resp.text, (resp.status_code, resp.text[:300])


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_an_upgrade_asked_of_a_plain_wsgi_app_gets_its_answer_whole(containers, fixture_image, worker_class):
    # A WSGI app with no idea of WebSockets answers as to any request: a
    # page, and a stream that arrives whole and framed.
    c = containers.serving(image=fixture_image["image"],
                           env={"APP_MODULE": "plain:application", "WORKER_CLASS": worker_class})
    for headers in UPGRADES:
        page = requests.get(f"http://127.0.0.1:{c.port}/page", headers=headers, timeout=10)
        assert (page.status_code, page.text) == (200, "plain wsgi unset /page\n"), headers
        stream = requests.get(f"http://127.0.0.1:{c.port}/stream", headers=headers, timeout=10)
        assert stream.status_code == 200 and stream.headers.get("Transfer-Encoding") == "chunked"
        assert stream.text == "plain line 0\nplain line 1\nplain line 2\n", headers

    def logged() -> list[str]:
        return [line for line in c.stdout_lines() if '"GET /' in line]

    lines = c.wait_until(lambda: len(logged()) >= 5 and logged(), "the access log's five lines")
    assert all(line.endswith(" done=ok") and '" 200 ' in line for line in lines), lines


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
