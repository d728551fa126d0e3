"""METRICS_PORT: a real Prometheus scrapes a running container and its
queries return the requests sent, by handler, method, status and refusal
reason; `promtool check metrics` accepts the text; the counts stay exact
across worker processes and recycled workers; a bad METRICS_PORT stops the
start with exit 2."""

import concurrent.futures
import http.client
import json
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from helpers import docker, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def sample(text: str, series: str) -> float | None:
    """The value of one series (name and labels exactly as written)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class Prometheus:
    """A Prometheus server on 127.0.0.1, scraping one target every second,
    with its data in a temporary folder; stopped at the end of the test."""

    def __init__(self, tmp_path, target_port: int):
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: flaskbox\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def query(self, promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, promql: str) -> float | None:
        try:
            result = self.query(promql)
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, expected: float, timeout: float = 30) -> None:
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            last = self.value(promql)
            if last == expected:
                return
            time.sleep(0.5)
        raise AssertionError(f"{promql}: {last}, expected {expected}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def prometheus(tmp_path):
    started = []

    def start(target_port: int) -> Prometheus:
        started.append(Prometheus(tmp_path, target_port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_prometheus_counts_what_was_sent(module_containers, prometheus, fixture_image):
    metrics_port = free_port()
    # 2, not 1: a client's next request may come before nginx has freed the
    # slot of the one it just answered.
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port),
                                           "CONNECTIONS_PER_CLIENT": "2"})
    container.wait_http("/-/alive")  # not counted: the probes are not logged
    server = prometheus(metrics_port)
    # Two requests of 3 s hold both slots of 127.0.0.2; its next is refused.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = [pool.submit(container.request, "/sleep/3", source="127.0.0.2") for _ in range(2)]
        container.wait_until(lambda: container.logs().count("sleep start 3") == 2, "the requests running")
        refused = container.request("/", source="127.0.0.2")
        assert refused.status == 503
        assert [request.result(timeout=30).status for request in held] == [200, 200]
    for _ in range(7):
        assert container.request("/").status == 200
    for _ in range(3):
        assert container.request("/no-such-page").status == 404
    for _ in range(2):
        assert fixture_image["static_token"] in container.request("/static/proof.txt").body.decode()
    assert container.request("/", method="BREW").status == 405

    server.wait_for('flaskbox_http_requests_total{handler="app",method="GET",status="200"}', 9)
    server.wait_for('flaskbox_http_requests_total{handler="app",method="GET",status="404"}', 3)
    server.wait_for('flaskbox_http_requests_total{handler="app",method="GET",status="503"}', 1)
    server.wait_for('flaskbox_http_requests_total{handler="app",method="_OTHER",status="405"}', 1)
    server.wait_for('flaskbox_http_requests_total{handler="static",method="GET",status="200"}', 2)
    server.wait_for('flaskbox_refusals_total{reason="per_client"}', 1)
    server.wait_for('sum(flaskbox_refusals_total)', 1)
    server.wait_for('flaskbox_http_request_duration_seconds_count{handler="app"}', 14)
    # The 3 s requests are in the 5 s bucket, not the 2.5 s one.
    bucket = 'flaskbox_http_request_duration_seconds_bucket{handler="app",le="%s"}'
    server.wait_for(f"{bucket % '5.0'} - ignoring(le) {bucket % '2.5'}", 2)
    processes = int(re.search(r"uWSGI (\d+) processes", container.logs()).group(1))
    server.wait_for("sum(flaskbox_workers)", processes)
    server.wait_for('count(flaskbox_build_info{nginx=~"1[.].+",uwsgi="2.0.31"})', 1)


def test_promtool_accepts_the_text(module_containers):
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port)})
    container.wait_http("/")
    text = container.wait_until(lambda: (t := scrape(metrics_port)) and 'status="200"' in t and t,
                                "the request counted")
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in ("flaskbox_queue_depth", "flaskbox_requests_in_flight", "flaskbox_open_streams",
                 "flaskbox_open_websockets", "flaskbox_worker_respawns_total", "flaskbox_draining",
                 'flaskbox_worker_memory_bytes{worker="1"}'):
        assert sample(text, name) is not None, name
    assert sample(text, 'flaskbox_worker_memory_bytes{worker="1"}') > 10 << 20
    # QUEUE_SIZE's default: 4 per thread of the pool the log announced, at least 64.
    pool = re.search(r"uWSGI (\d+) processes x (?:up to )?(\d+) threads", container.logs())
    assert pool, container.logs()
    assert sample(text, "flaskbox_queue_size") == max(64, 4 * int(pool.group(1)) * int(pool.group(2)))


def test_the_metrics_port_answers_head_refuses_other_methods_and_shrugs_off_hang_ups(module_containers):
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port)})
    container.wait_http("/")
    container.wait_until(lambda: scrape(metrics_port), "the metrics server")
    answers = {}
    for method in ("HEAD", "POST", "DELETE", "BREW"):
        conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
        conn.request(method, "/metrics", body=b"x" if method == "POST" else None)
        resp = conn.getresponse()
        answers[method] = (resp.status, resp.getheader("Allow"), resp.read())
        conn.close()
    assert answers["HEAD"][0] == 200 and answers["HEAD"][2] == b""
    assert all(answers[m][:2] == (405, "GET, HEAD") for m in ("POST", "DELETE", "BREW")), answers
    # Scrapers that hang up half-way through their request or before reading
    # the answer: nothing for the log, and the next scrape is served.
    for request in (b"GET /metrics HTTP/1.1\r\n", b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n") * 5:
        for reset in (False, True):
            with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as sock:
                if reset:  # closed with RST rather than FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.sendall(request)
    assert "flaskbox_queue_depth" in scrape(metrics_port)
    logs = container.logs()
    assert "Traceback" not in logs and "BrokenPipeError" not in logs, logs[-3000:]


def test_counts_are_exact_across_processes_and_recycled_workers(module_containers):
    metrics_port = free_port()
    # Workers recycled every ~100 requests (and at least a second old):
    # each of 4 processes is replaced several times over 3000 requests from
    # 24 clients at once.
    container = module_containers.run(env={
        "METRICS_PORT": str(metrics_port), "UWSGI_PROCESSES": "4", "UWSGI_THREADS": "2",
        "UWSGI_MAX_REQUESTS": "100", "UWSGI_MAX_REQUESTS_DELTA": "10", "UWSGI_MIN_WORKER_LIFETIME": "1",
        "CONNECTIONS_PER_CLIENT": "64"})
    container.wait_http("/-/alive")
    total = 3000

    def get(number: int) -> int:
        return container.request("/" if number % 2 else "/text", timeout=30).status

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(get, range(total)))
    assert statuses.count(200) == total, {status: statuses.count(status) for status in set(statuses)}

    def counted():
        text = scrape(metrics_port)
        return text if sample(text, 'flaskbox_http_requests_total{handler="app",method="GET",status="200"}') \
            == total else None

    text = container.wait_until(counted, f"{total} requests counted", timeout=15)
    # Recycled mid-load (each worker at most once a second: min-worker-lifetime).
    assert sample(text, "flaskbox_worker_respawns_total") >= 2, text
    # And nothing counted twice by a later read.
    assert sample(scrape(metrics_port),
                  'flaskbox_http_requests_total{handler="app",method="GET",status="200"}') == total


# Every form is checked in-process (test_settings_forms.py); these prove the wiring.
@pytest.mark.parametrize("value", ["same", "nine"])
def test_bad_metrics_port_stops_the_start(containers, value):
    port = free_port()
    metrics_port = str(port) if value == "same" else value
    result = containers.run_once(env={"PORT": str(port), "METRICS_PORT": metrics_port})
    assert result.returncode == 2, result.stderr
    assert "METRICS_PORT" in result.stderr
    assert "a port number from 1 to 65535 other than PORT" in result.stderr


def test_a_dead_metrics_server_is_started_again_and_serving_goes_on(module_containers):
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port)})
    container.wait_http("/")
    pids = [pid for pid, _, command in container.processes() if "flaskbox metrics" in command]
    assert len(pids) == 1, container.processes()
    assert container.exec("bash", "-c", f"kill -KILL {pids[0]}").returncode == 0
    assert container.request("/").status == 200
    container.wait_until(lambda: "flaskbox_up 1" in scrape(metrics_port), "the metrics server back")
    assert "the metrics server exited with code 137; starting it again" in container.logs()
    assert container.running()


def test_open_streams_and_stream_slot_refusals_with_gevent(module_containers):
    # WORKER_CONNECTIONS=10 keeps 9 slots for streams (a tenth for ordinary
    # requests): 9 streams open, the 10th is refused for its reason.
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port), "WORKER_CLASS": "gevent",
                                           "WORKER_CONNECTIONS": "10", "CONNECTIONS_PER_CLIENT": "50"})
    container.wait_http("/-/alive")
    streams = []
    try:
        for _ in range(9):
            sock = socket.create_connection(("127.0.0.1", container.port), timeout=10)
            sock.sendall(b"GET /stream/300?every=0.1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            streams.append(sock)
        text = container.wait_until(lambda: (t := scrape(metrics_port)) and
                                    sample(t, "flaskbox_open_streams") == 9 and t, "9 open streams")
        assert sample(text, "flaskbox_open_websockets") == 0
        refused = container.request("/stream/3")
        assert refused.status == 503 and "x-flaskbox-outcome" not in refused.headers
        refusals = 'flaskbox_refusals_total{reason="stream_slots"}'
        container.wait_until(lambda: sample(scrape(metrics_port), refusals) == 1, "the refusal counted")
    finally:
        for sock in streams:
            sock.close()
    container.wait_until(lambda: sample(scrape(metrics_port), "flaskbox_open_streams") == 0, "streams closed")


def test_draining_is_shown_while_the_container_stops(module_containers):
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port)})
    container.wait_http("/")
    assert sample(scrape(metrics_port), "flaskbox_draining") == 0
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # A request of 3 s keeps nginx draining; the metrics are served
        # until the end of the stop.
        held = pool.submit(container.request, "/sleep/3")
        container.wait_until(lambda: "sleep start 3" in container.logs(), "the request running")
        stopping = pool.submit(docker, "stop", container.name, timeout=30)
        container.wait_until(lambda: sample(scrape(metrics_port), "flaskbox_draining") == 1, "draining 1",
                             timeout=5, interval=0.05)
        assert held.result(timeout=30).status == 200
        stopping.result(timeout=30)


def test_a_stuck_handler_counts_as_a_timeout_and_a_replaced_worker(module_containers):
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port), "REQUEST_TIMEOUT": "2",
                                           "UWSGI_PROCESSES": "2", "UWSGI_THREADS": "2"})
    container.wait_http("/-/alive")
    assert container.request("/hang", timeout=30).status == 504
    replaced = 'flaskbox_worker_replacements_total{reason="stuck_request"}'

    def counted():
        text = scrape(metrics_port)
        # The retirement is counted as the worker leaves; its respawn once
        # the master has forked the new one, a moment later.
        respawned = sample(text, "flaskbox_worker_respawns_total") >= 1
        return text if sample(text, replaced) == 1 and respawned else None

    # The worker retires once its other requests end, within worker-reload-mercy.
    text = container.wait_until(counted, "the retired worker counted and respawned", timeout=30, interval=0.5)
    assert sample(text, "flaskbox_request_timeouts_total") == 1
    assert sample(text, 'flaskbox_http_requests_total{handler="app",method="GET",status="504"}') == 1
    assert sample(text, 'flaskbox_worker_replacements_total{reason="blocked_loop"}') == 0


def test_a_full_queue_is_counted_as_queue_full(module_containers):
    # One thread and no queue: while it sleeps, the next request finds no slot.
    metrics_port = free_port()
    container = module_containers.run(env={"METRICS_PORT": str(metrics_port), "QUEUE_SIZE": "0",
                                           "UWSGI_PROCESSES": "1", "UWSGI_THREADS": "1"})
    container.wait_http("/-/alive")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(container.request, "/sleep/3", source="127.0.0.2")
        container.wait_until(lambda: "sleep start 3" in container.logs(), "the request running")
        assert container.request("/", source="127.0.0.3").status == 503
        assert held.result(timeout=30).status == 200
    queue_full = 'flaskbox_refusals_total{reason="queue_full"}'
    container.wait_until(lambda: sample(scrape(metrics_port), queue_full) == 1, "the refusal counted")
    assert sample(scrape(metrics_port), 'flaskbox_refusals_total{reason="per_client"}') == 0
