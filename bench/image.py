"""The image's own measurements: builds, cold starts, idle stops, memory,
size, streams held, and the same on the second base."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from harness import BENCH, CONTENDERS_TAG, PRODUCT_TAG, REPO, SECOND_PRODUCT_TAG, log
from servers import start

from helpers import build_image, docker
from load import Load, percentile
from sse import Crowd


def cold_starts(count: int, tag: str = PRODUCT_TAG) -> list[float]:
    """Seconds from `docker run` to the first 200, polled every 10 ms."""
    times = []
    for _ in range(count):
        started = time.monotonic()
        container = start(tag, timeout=30, interval=0.01)
        times.append(time.monotonic() - started)
        container.remove()
    return times


def idle_stops(count: int) -> list[float]:
    """Seconds `docker stop` takes once the container has answered."""
    times = []
    for _ in range(count):
        container = start(PRODUCT_TAG, timeout=30)
        started = time.monotonic()
        docker("stop", container.name)
        times.append(time.monotonic() - started)
        if container.exit_code() != 0:
            container.fail(f"idle stop exited with {container.exit_code()}")
        container.remove()
    return times


def idle_memory_mb(tag: str = PRODUCT_TAG) -> dict:
    """Default settings, after a few requests, with nothing in flight: the
    sum of RSS (shared pages once per process) and of PSS (shared pages
    divided among their sharers)."""
    container = start(tag, timeout=30)
    try:
        for _ in range(20):
            container.request("/")
        return {"rss": round(container.rss_kb() / 1024, 1), "pss": round(container.pss_kb() / 1024, 1)}
    finally:
        container.remove()


def streams_held(worker_class: str, clients: int, seconds: float) -> dict:
    """`clients` Server-Sent Event streams (an event a second) held for
    `seconds` while 4 connections make ordinary requests: what the streams
    got, what the ordinary requests got, and the memory it took."""
    container = start(CONTENDERS_TAG, env={"WORKER_CLASS": worker_class})
    try:
        idle = container.rss_kb() / 1024
        path = f"/events?count={int(seconds) + 10}&every=1"
        with Crowd(container.port, path, clients, seconds) as crowd, \
                Load(container.port, path="/page", connections=4, seconds=seconds) as load:
            time.sleep(seconds / 2)  # the measurement's schedule: memory midway
            held = container.rss_kb() / 1024
        latencies = [o.latency for o in load.outcomes if o.status == 200]
        return {
            "clients": clients,
            "streams_served": crowd.statuses.count(200),
            "events_per_stream_median": statistics.median(crowd.counts) if crowd.counts else 0,
            "event_delay_p99_ms": round(percentile(crowd.delays, 99) * 1000, 1) if crowd.delays else None,
            "ordinary_ok": len(latencies),
            "ordinary_not_ok": len(load.outcomes) - len(latencies),
            "ordinary_p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
            "rss_idle_mb": round(idle, 1),
            "rss_streams_mb": round(held, 1),
        }
    finally:
        container.remove()


def image_size(base_image: str) -> dict:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", PRODUCT_TAG).stdout)
    base = int(docker("image", "inspect", "-f", "{{.Size}}", base_image).stdout)
    return {"image_mb": round(size / 1e6, 1), "base_mb": round(base / 1e6, 1),
            "added_mb": round((size - base) / 1e6, 1)}


def build_images(base_image: str, product: str, contenders_tag: str) -> None:
    """The image under test on `base_image`, and the contenders' image on it."""
    log(f"building {product} on {base_image}")
    build_product(base_image, tag=product)
    log(f"building {contenders_tag} (adds gunicorn, gevent, Granian, the tiangolo configuration, bench/app)")
    build_image(BENCH, contenders_tag, {"FLASKBOX_IMAGE": product})


def python_version(tag: str) -> str:
    out = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", tag, "--version").stdout
    return out.strip()


def build_product(base_image: str, context: Path = REPO, tag: str = PRODUCT_TAG) -> float:
    started = time.monotonic()
    build_image(context, tag, {"BASE_IMAGE": base_image})
    return time.monotonic() - started


def rebuild_after_app_change(base_image: str) -> float:
    """Seconds to rebuild after editing app code only (dependencies cached)."""
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context"
        skip = shutil.ignore_patterns(".git", "bench", "tests", "docs", "deploy")
        shutil.copytree(REPO, context, ignore=skip)
        with (context / "app" / "app.py").open("a") as source:
            source.write(f"\n# edited at {time.time()}\n")
        tag = "flaskbox-bench:rebuild"
        try:
            return build_product(base_image, context, tag)
        finally:
            docker("rmi", "-f", tag, check=False)


def default_pool() -> tuple[int, int]:
    """flaskbox's default uWSGI processes and threads on this machine."""
    out = docker("run", "--rm", "--network", "host", "-e", "PORT=8080", PRODUCT_TAG, "python3", "-c",
                 "from flaskbox import settings; values = settings.resolve('production').values; "
                 "print(values['UWSGI_PROCESSES'], values['UWSGI_THREADS'])").stdout
    processes, threads = out.split()[-2:]
    return int(processes), int(threads)


def median_of(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "all": [round(v, 3) for v in values]}


def measure_image(base_image: str, smoke: bool) -> dict:
    log("measuring the image: cold start, idle stop, memory, size, rebuild")
    return {
        "cold_start_s": median_of(cold_starts(3 if smoke else 10)),
        "idle_stop_s": median_of(idle_stops(1 if smoke else 5)),
        "idle_memory_mb": idle_memory_mb(),
        **image_size(base_image),
        "rebuild_after_app_change_s": round(rebuild_after_app_change(base_image), 2),
    }


def measure_second_base(base_image: str, smoke: bool) -> dict:
    log(f"measuring the image on {base_image}: cold start, memory")
    return {"base_image": base_image,
            "cold_start_s": median_of(cold_starts(3 if smoke else 10, SECOND_PRODUCT_TAG)),
            "idle_memory_mb": idle_memory_mb(SECOND_PRODUCT_TAG),
            "python": python_version(SECOND_PRODUCT_TAG)}
