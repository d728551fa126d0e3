"""Sentry and OpenTelemetry, the real SDKs from PyPI, set up as
docs/production.md's tracing section shows, deliver what they still hold
when a worker ends (issue 54): OpenTelemetry's BatchSpanProcessor, whose
spans here leave only at its exit handler's flush, and Sentry's transport,
whose second event waits behind a slow first one when the worker ends. The
collector is this test's own, on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import re
import threading
import time
import uuid

import pytest
from local_http import QuietKeepAlive

from helpers import build_image, docker, free_port

SDKS = "sentry-sdk opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"
APP = '''"""The fixture app with Sentry and OpenTelemetry set up as production.md shows."""
import os

import sentry_sdk
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# shutdown_timeout: what Sentry's exit handler may wait for its queue, within
# the worker's exit budget.
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], shutdown_timeout=10)


def start_tracing():
    # Once per worker process, after the fork: its own exporter thread. A
    # delay longer than the test: spans leave only at the exit's flush.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=600000))
    trace.set_tracer_provider(provider)


os.register_at_fork(after_in_child=start_tracing)
tracer = trace.get_tracer("flaskbox-test")

from app import app  # noqa: E402


@app.get("/traced/<name>")
def traced(name):
    with tracer.start_as_current_span(f"span-{name}"):
        if name.startswith("event-"):
            sentry_sdk.capture_message(f"message-{name}")
    return f"{os.getpid()}\\n"
'''


class Collector:
    """OTLP/HTTP's /v1/traces and Sentry's envelope endpoint on 127.0.0.1:
    what each received, raw; Sentry's answers come `sentry_delay` s late,
    as a slow or distant service's do."""

    def __init__(self, sentry_delay: float):
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(QuietKeepAlive):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                # Sentry compresses its envelopes.
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with collector.lock:
                    collector.received.append((self.path, body))
                if "/envelope/" in self.path:
                    time.sleep(sentry_delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> bytes:
        with self.lock:
            return b"".join(body for path, body in self.received if path == "/v1/traces")

    def events(self) -> bytes:
        with self.lock:
            return b"".join(body for path, body in self.received if "/envelope/" in path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sdk_image(fixture_image, tmp_path_factory):
    context = tmp_path_factory.mktemp("sdks")
    (context / "tracing.py").write_text(APP)
    user = docker("inspect", "--format", "{{.Config.User}}", fixture_image["image"]).stdout.strip()
    (context / "Dockerfile").write_text(
        f"FROM {fixture_image['image']}\nUSER 0\nRUN pip install --no-cache-dir {SDKS}\n"
        f"USER {user or '10001:0'}\nCOPY tracing.py /app/tracing.py\n")
    tag = f"flaskbox-sdks:{uuid.uuid4().hex[:12]}"
    build_image(context, tag)
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture
def collector():
    # Sentry's first event is answered 6 s late: the second waits in its
    # queue past the worker's retirement, for the exit handler's flush.
    made = Collector(sentry_delay=6)
    yield made
    made.close()


def sdk_env(collector: Collector, **env: str) -> dict[str, str]:
    return {"APP_MODULE": "tracing:app", "SENTRY_DSN": f"http://public@127.0.0.1:{collector.port}/1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_SERVICE_NAME": "flaskbox-test", **env}


def test_a_worker_the_watchdog_retires_delivers_its_spans_and_events(containers, sdk_image, collector):
    c = containers.serving(image=sdk_image, env=sdk_env(collector, REQUEST_TIMEOUT="3", UWSGI_PROCESSES="1"))
    token = uuid.uuid4().hex[:8]
    for name in (f"a-{token}", f"event-1-{token}", f"event-2-{token}"):
        assert c.request(f"/traced/{name}").status == 200
    assert c.request("/hang", timeout=30).status == 504
    c.wait_until(lambda: re.search(r"worker pid \d+ retired", c.logs()), "the worker's retirement")
    # Nothing of the spans left before the worker's end (the batch's delay
    # is 10 minutes): only its exit handler's flush sends them.
    c.wait_until(lambda: f"span-event-2-{token}".encode() in collector.spans(), "the spans, at the exit",
                 timeout=30)
    assert f"span-a-{token}".encode() in collector.spans()
    c.wait_until(lambda: f"message-event-2-{token}".encode() in collector.events(),
                 "Sentry's queued event, at the exit", timeout=30)
    assert "past its budget" not in c.logs()


# gevent: its threads (the SDKs' senders) are greenlets of the worker's loop,
# and uWSGI runs no Python exit handler there of its own (gevent_exit.py).
@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_docker_stop_delivers_every_workers_spans_and_events(containers, sdk_image, collector, worker_class):
    env = sdk_env(collector, UWSGI_PROCESSES="2", WORKER_CLASS=worker_class)
    c = containers.serving(image=sdk_image, env=env)
    token = uuid.uuid4().hex[:8]
    names = [f"s{number}-{token}" for number in range(20)] + [f"event-1-{token}", f"event-2-{token}"]
    pids = {c.request(f"/traced/{name}").text.strip() for name in names}
    started = time.monotonic()
    docker("stop", "--time", "10", c.name, timeout=40)
    assert time.monotonic() - started < 10
    assert c.exit_code() == 0, c.logs()
    spans = collector.spans()
    assert [name for name in names if f"span-{name}".encode() not in spans] == [], (pids, c.logs())
    assert f"message-event-2-{token}".encode() in collector.events(), c.logs()


def test_the_sdks_came_from_pypi(sdk_image):
    # Real SDKs, not stand-ins: their distributions are in the image.
    shown = docker("run", "--rm", "--network", "host", sdk_image, "python", "-c",
                   "import importlib.metadata as m; print(m.version('sentry-sdk'), "
                   "m.version('opentelemetry-sdk'), m.version('opentelemetry-exporter-otlp-proto-http'))")
    assert re.fullmatch(r"\d+\.\d+\S* \d+\.\d+\S* \d+\.\d+\S*\n", shown.stdout), shown.stdout

