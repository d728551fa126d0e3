"""WORKER_CLASS=gevent holds long-lived connections without starving the
rest: one container on 2 CPUs keeps 500 Server-Sent Event clients for 30 s
while ordinary requests keep a p99 under 100 ms. REQUEST_TIMEOUT bounds a
handler, not the stream it returns; STREAM_IDLE_TIMEOUT and
STREAM_MAX_DURATION end streams and WebSockets cleanly; streams leave a
tenth of the slots to ordinary requests; a handler that never yields takes
only its own process down, which is replaced."""

import time

import pytest
import websocket

from load import Load, percentile
from sse import Crowd, OpenStream, read_stream

CLIENTS = 500
SECONDS = 30


@pytest.mark.slow
def test_500_event_streams_while_ordinary_requests_flow(realtime, figure):
    c = realtime("gevent")
    # An event a second per client; ordinary requests that wait 20 ms on
    # I/O each (a database call), 4 at a time, all along.
    with Crowd(c.port, f"/events?count={SECONDS + 10}&every=1", CLIENTS, SECONDS) as crowd, \
            Load(c.port, path="/busy?seconds=0.02", connections=4, seconds=SECONDS) as load:
        pass
    assert crowd.errors == [] and crowd.statuses == [200] * CLIENTS, (crowd.errors[:5], set(crowd.statuses))
    assert min(crowd.counts) >= SECONDS - 3, sorted(crowd.counts)[:10]
    delay_p99 = percentile(crowd.delays, 99)
    latencies = [outcome.latency for outcome in load.outcomes]
    assert all(outcome.status == 200 for outcome in load.outcomes)
    ordinary_p99 = percentile(latencies, 99)
    figure(f"{CLIENTS} SSE clients for {SECONDS} s: events each (min), event delay p99 ms, "
           "ordinary requests, their p99 ms",
           f"{min(crowd.counts)}, {delay_p99 * 1000:.1f}, {len(latencies)}, {ordinary_p99 * 1000:.1f}")
    # The bar is on ordinary requests. Events get a looser one: the
    # first of each of 500 clients lands in the opening burst, read by one
    # Python thread beside the load's (p99 measured 20-110 ms on a quiet
    # 2-CPU machine, 204-352 ms on one a third slower in CPU, 515-559 ms in
    # its full suite runs); a buffered stream would show whole seconds.
    assert delay_p99 < 0.9, f"event delay p99 {delay_p99 * 1000:.0f} ms"
    assert ordinary_p99 < 0.1, f"ordinary p99 {ordinary_p99 * 1000:.0f} ms"


def test_request_timeout_bounds_the_handler_not_the_stream(realtime):
    c = realtime("gevent", REQUEST_TIMEOUT="2")
    # The start names the pool as gevent runs it (not "x 1 threads").
    assert "available: uWSGI 1 processes x 2000 gevent requests, nginx" in c.logs(), c.logs()
    started = time.monotonic()
    stuck = c.request("/busy?seconds=10")
    assert stuck.status == 504 and time.monotonic() - started < 3.5
    c.wait_until(lambda: "GET /busy?seconds=10 ran past REQUEST_TIMEOUT (2 s)" in c.logs(), "the log line")
    # A stream of 4 s outlives REQUEST_TIMEOUT whole.
    stream = read_stream(c.port, "/events?count=6&every=0.8")
    assert stream.complete and len(stream.events()) == 6


def test_idle_and_overlong_streams_end_cleanly(realtime):
    c = realtime("gevent", STREAM_IDLE_TIMEOUT="2", STREAM_MAX_DURATION="3")
    started = time.monotonic()
    idle = read_stream(c.port, "/events?count=3&every=5")
    assert idle.complete and len(idle.events()) == 1 and 1.8 < time.monotonic() - started < 3.5
    started = time.monotonic()
    endless = read_stream(c.port, "/forever?name=endless")
    assert endless.complete and 2.8 < time.monotonic() - started < 4.5
    # The end was raised in the app's generator, where it waited, so its own
    # cleanup (except/finally) ran.
    c.wait_until(lambda: {"name": "endless", "how": "StreamEnd"} in c.request("/ended").json()["ended"],
                 "the app's own cleanup")
    logs = c.logs()
    assert "nothing sent for STREAM_IDLE_TIMEOUT (2 s)" in logs
    assert "STREAM_MAX_DURATION (3 s) reached" in logs


def test_a_websocket_is_closed_at_stream_max_duration(realtime):
    c = realtime("gevent", STREAM_MAX_DURATION="2")
    ws = websocket.create_connection(f"ws://127.0.0.1:{c.port}/ws", timeout=10)
    started = time.monotonic()
    ws.send("still here")
    assert ws.recv() == "still here"
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1001
    assert 1.8 < time.monotonic() - started < 4
    ws.close()


def test_a_handler_that_never_yields_takes_only_its_process_down(realtime, figure):
    c = realtime("gevent", REQUEST_TIMEOUT="2")
    before = c.request("/busy?seconds=0").json()["pid"]
    started = time.monotonic()
    spun = c.request("/spin?seconds=60", timeout=20)
    elapsed = time.monotonic() - started
    figure("a handler spinning on the CPU under REQUEST_TIMEOUT=2: status, seconds",
           f"{spun.status}, {elapsed:.1f}")
    assert spun.status == 502 and elapsed < 5
    after = c.wait_http("/busy?seconds=0").json()["pid"]
    assert after != before
    assert "has been blocked for" in c.logs()


def test_streams_leave_a_tenth_of_the_slots_to_ordinary_requests(realtime):
    c = realtime("gevent", WORKER_CONNECTIONS="20")
    streams = [OpenStream(c.port, "/forever") for _ in range(25)]
    try:
        statuses = sorted(stream.status for stream in streams)
        assert statuses == [200] * 18 + [503] * 7
        refused = next(stream for stream in streams if stream.status == 503)
        assert refused.headers["retry-after"] == "5"
        # A WebSocket needs a slot too.
        with pytest.raises(websocket.WebSocketBadStatusException) as error:
            websocket.create_connection(f"ws://127.0.0.1:{c.port}/ws", timeout=10)
        assert error.value.status_code == 503
        # Ordinary requests still have their two slots, and then some.
        started = time.monotonic()
        assert all(c.request("/busy?seconds=0").status == 200 for _ in range(20))
        assert time.monotonic() - started < 2
    finally:
        for stream in streams:
            stream.sock.close()
    c.wait_until(lambda: "stream slots of this process are open" in c.logs(), "the log line")
