"""One address cannot hold the sync pool with answers it never reads: it
gets at most CLIENT_STREAM_SHARE percent of the threads for answers that go
at its pace (streams, event streams, WebSockets); past that, 503 with
Retry-After at once, counted in /metrics. Ordinary requests, from it and
from everyone else, are answered within 1 s throughout. A stream whose
reader has stopped ends after 10 s without progress, not after nginx's
send_timeout (30 s), and its thread serves again."""

import re
import socket
import threading
import time

from fake_host import FakeHost, resolve
from flaskbox.request import outbound, serve
from helpers import free_port

STREAMS = 80
# The default pool on 2 CPUs (2 processes x 32 threads, set here so that the
# figures hold on any machine); CLIENT_STREAM_SHARE's 80 % of its threads.
DEFAULTS = resolve(host=FakeHost(cpus=2)).values
PROCESSES, THREADS = int(DEFAULTS["UWSGI_PROCESSES"]), int(DEFAULTS["UWSGI_THREADS"])
SHARE = PROCESSES * THREADS * int(DEFAULTS["CLIENT_STREAM_SHARE"]) // 100


def never_read(port: int, path: str, source: str = "127.0.0.1") -> socket.socket:
    """A request whose answer is never read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def metric(c, metrics_port: int, name: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics\n{text}"
    return float(match.group(1))


class Ordinary:
    """GET / every 50 ms, from two addresses (the streams' own and another),
    until stopped: the slowest answer and any that was not a 200."""

    def __init__(self, container):
        self.container, self.latencies, self.failures = container, [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        sources = ("127.0.0.1", "127.0.0.2")
        while not self.stopping.is_set():
            source = sources[len(self.latencies) % 2]
            started = time.monotonic()
            try:
                status = self.container.request("/", timeout=10, source=source).status
            except OSError as exc:
                status = repr(exc)
            self.latencies.append(time.monotonic() - started)
            if status != 200:
                self.failures.append((source, status))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(15)


def test_80_never_read_streams_from_one_address_leave_the_pool_to_others(containers, fixture_image, figure):
    metrics_port = free_port()
    env = {"UWSGI_PROCESSES": str(PROCESSES), "UWSGI_THREADS": str(THREADS),
           "METRICS_PORT": str(metrics_port)}
    c = containers.serving(image=fixture_image["image"], env=env)
    held: list[socket.socket] = []
    try:
        with Ordinary(c) as ordinary:
            # An event every 0.2 s for hours: each holds its thread until its
            # client goes, and its buffers never fill (no reader to end).
            held += [never_read(c.port, "/stream/100000?every=0.2") for _ in range(STREAMS)]
            c.wait_until(lambda: metric(c, metrics_port, "flaskbox_open_streams") == SHARE
                         and metric(c, metrics_port, 'flaskbox_refusals_total{reason="stream_share"}')
                         == STREAMS - SHARE, f"{SHARE} streams open and {STREAMS - SHARE} refused",
                         timeout=30)
            # Another address still gets a stream of its own.
            other = c.request("/stream/3?every=0", source="127.0.0.3")
            assert other.status == 200 and other.body.count(b"line ") == 3
            time.sleep(3)  # ordinary traffic goes on beside the held pool for a while
        assert metric(c, metrics_port, "flaskbox_open_streams") == SHARE
    finally:
        for sock in held:
            sock.close()
    assert ordinary.failures == [], ordinary.failures[:5]
    slowest = max(ordinary.latencies)
    assert len(ordinary.latencies) > 40 and slowest < 1, (len(ordinary.latencies), slowest)
    # The refused streams' answers were 503s, nothing worse in the log.
    c.wait_until(lambda: "CLIENT_STREAM_SHARE" in c.logs(), "the refusal's log line", timeout=5)
    assert "Traceback" not in c.logs(), c.logs()[-3000:]
    figure(f"{STREAMS} never-read streams from one address, {PROCESSES * THREADS} threads: held, refused "
           "with 503, ordinary requests (two addresses), the slowest ms",
           f"{SHARE}, {STREAMS - SHARE}, {len(ordinary.latencies)}, {slowest * 1000:.0f}")


def test_a_stream_whose_reader_stopped_ends_and_frees_its_thread(containers, fixture_image, figure):
    # One thread in all: the request behind the stalled stream is answered
    # only once the stream's thread is free.
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "1", "UWSGI_THREADS": "1"})
    started = time.monotonic()
    # 64 KB chunks as fast as they come: the buffers on the way fill at once.
    stalled = never_read(c.port, "/stream/100000000?every=0&pad=65536")
    try:
        time.sleep(1)
        resp = c.request("/", timeout=60, source="127.0.0.2")
        waited = time.monotonic() - started
    finally:
        stalled.close()
    assert resp.status == 200, resp.status
    assert "its reader has stopped: ended, and its thread freed" in c.logs()
    # 10 s without progress once every buffer on the way is full; nginx's
    # send_timeout alone held it 30 s, and the request behind it got a 503.
    assert outbound.STALLED_SECONDS <= waited < 20, waited
    figure("a stream never read, on the only thread: the request behind it answered after s", f"{waited:.1f}")


def test_the_share_counts_each_address_apart():
    share = outbound.Share(50, processes=2, threads=4)  # 4 of 8 threads per address
    taken = [share.take("10.0.0.1", worker=1 + index % 2) for index in range(4)]
    assert None not in taken and -1 not in taken and len(set(taken)) == 4
    assert share.take("10.0.0.1", worker=1) is None
    assert share.take("10.0.0.2", worker=2) is not None
    share.give_back(taken[0])
    assert share.take("10.0.0.1", worker=1) is not None
    # A new process in worker 1's place (a respawn) starts with its row free.
    share.pid = None
    assert share.take("10.0.0.1", worker=1) is not None


def test_the_pace_of_an_answer_is_read_in_the_same_pass_as_its_vary():
    """An answer at its client's pace (X-Accel-Buffering: no, the app's or
    the wrapper's) takes a thread of its client's share, told from the one
    pass over its headers that also settles its Vary, whatever the case of
    the names; a stream (chunked) is one whose reader may stop."""
    share = outbound.Share(50, processes=2, threads=4)

    def held(headers):
        sent, seen = {}, {}

        def app(environ, start_response):
            start_response("200 OK", headers)
            seen["request"] = served.watchdog.running[threading.get_ident()]
            return [b"x"]

        served = serve.Serve(app, 5, share=share, compressed=True, worker_id=lambda: 1)
        body = served({"REQUEST_METHOD": "GET", "REQUEST_URI": "/", "REMOTE_ADDR": "10.0.0.9"},
                      lambda status, headers, exc_info=None: sent.update(headers=headers))
        request = seen["request"]
        slot = request.slot
        stalls = request.stalls if slot is not None else None
        getattr(body, "close", lambda: None)()
        return sent["headers"], slot, stalls

    stream = [("Content-Type", "text/csv"), ("x-accel-buffering", " No"), ("TRANSFER-ENCODING", "chunked")]
    headers, slot, stalls = held(stream)
    assert slot is not None and stalls is True and headers == stream
    large = [("Content-Type", "text/html"), ("Content-Length", "9000000"), ("X-Accel-Buffering", "no"),
             ("Vary", "Cookie")]
    headers, slot, stalls = held(large)
    assert slot is not None and stalls is False and ("Vary", "Cookie, Accept-Encoding") in headers
    assert held([("Content-Type", "text/html"), ("Content-Length", "13")])[1] is None
    assert share.values[:].count(0) == len(share.values)  # every slot given back


def test_an_upgrade_holds_a_thread_of_its_share_until_its_request_ends():
    share = outbound.Share(50, processes=2, threads=4)
    held = {}

    def app(environ, start_response):
        held["slots"] = len(share.values) - share.values[:].count(0)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"no"]  # not a WebSocket route: answered as any request

    served = serve.Serve(app, 5, share=share, worker_id=lambda: 1)
    body = served({"REQUEST_METHOD": "GET", "REQUEST_URI": "/ws", "REMOTE_ADDR": "10.0.0.9",
                   "HTTP_UPGRADE": "websocket"}, lambda status, headers, exc_info=None: None)
    assert held["slots"] == 1 and list(body) == [b"no"]
    body.close()
    assert share.values[:].count(0) == len(share.values)
