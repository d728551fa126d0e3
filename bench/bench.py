"""flaskbox benchmark: production mode against its peers, in one run.

    bench/run.sh                 the full run (about 13 minutes on 2 cores)
    bench/run.sh --levers        flaskbox with one setting changed at a time
    bench/run.sh --features      flaskbox with one nginx feature taken out at a time
    bench/run.sh --cpus 1 ...    every container limited to that many CPUs
    bench/run.sh --profile       perf and py-spy samples of flaskbox under load
    bench/run.sh --traffic       waiting routes, slow downloads, open streams (traffic.py)
    bench/run.sh --smoke         2 s per contender, one route, one round
    bench/run.sh --out DIR       write results somewhere else

Every contender serves the same app (bench/app) from the same image, with
--network host on its own loopback port; wrk drives each in turn, interleaved
round by round so that a slow moment of the machine hits all of them alike.
Each run also records the CPU time each process group (nginx, the app
server, wrk) spent per request. Containers are driven with the test suite's
own helpers (tests/helpers.py). Results: RESULTS_DIR/latest.json and
latest.png; docs/BENCHMARKS.md explains them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The test suite's container driver and clients serve the benchmark too.
sys.path.insert(0, str(REPO / "tests"))
from helpers import Container, ContainerFactory, build_image, docker, free_port  # noqa: E402
from load import Load, percentile  # noqa: E402
from sse import Crowd  # noqa: E402

PRODUCT_TAG = "flaskbox:bench"  # the image under test, built from the repo
CONTENDERS_TAG = "flaskbox-bench:contenders"  # plus the other servers and bench/app
# The same two, built on the second base (--second-base): a new Python or
# distribution whose figures regress shows up in the same run.
SECOND_PRODUCT_TAG = "flaskbox:bench-second"
SECOND_CONTENDERS_TAG = "flaskbox-bench:contenders-second"
CONNECTIONS = 64
ROUTES = {"hello": "/", "template": "/page", "realistic": "/realistic", "static": "/static/blob.bin"}
# Every container the benchmark starts; main() removes them all at the end.
CONTAINERS = ContainerFactory(PRODUCT_TAG)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def start(image: str, *command: str, env: dict[str, str] | None = None, port: int | None = None,
          timeout: float = 60, interval: float = 0.1, docker_args: tuple[str, ...] = ()) -> Container:
    """A container of `image` (on `port`, or a free one); returns once GET /
    answers 200. --no-healthcheck: the image's own check would probe every
    contender."""
    container = CONTAINERS.run(*command, env=env, image=image, port=port,
                               docker_args=("--no-healthcheck", *docker_args))
    container.wait_http("/", timeout=timeout, interval=interval)
    return container


# --- contenders ------------------------------------------------------------

@dataclass
class Contender:
    name: str
    label: str
    command: list[str]  # empty: the image's own entry point (production mode)
    env: dict[str, str] = field(default_factory=dict)
    image: str = CONTENDERS_TAG
    docker_args: tuple[str, ...] = ()  # --cpus, a config mounted over the image's
    container: Container | None = None

    @property
    def port(self) -> int:
        return self.container.port

    def start(self) -> None:
        port = free_port()
        command = [part.replace("{PORT}", str(port)) for part in self.command]
        self.container = start(self.image, *command, env=self.env, port=port, docker_args=self.docker_args)

    def stop(self) -> None:
        if self.container:
            self.container.remove()


def contenders(processes: int, threads: int) -> list[Contender]:
    """The servers, each in the configuration its users actually run."""
    return [
        Contender("flaskbox", "flaskbox production (nginx + uWSGI)", []),
        Contender("flaskbox-gevent", "flaskbox production, WORKER_CLASS=gevent", [],
                  env={"WORKER_CLASS": "gevent"}),
        # The best-known nginx + uWSGI Flask image's configuration, as its
        # own files (contenders/tiangolo), in this image.
        Contender("tiangolo-config", "nginx + uWSGI as the best-known such image: 1 nginx worker, "
                  "uWSGI cheaper 2..16 single-threaded processes, both logs on",
                  ["/bench/contenders/tiangolo/run.sh"]),
        # Where projects leaving uWSGI go.
        Contender("granian", "Granian, 2 WSGI workers",
                  ["granian", "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                   "--port", "{PORT}", "--working-dir", "/app", "app:app"]),
        Contender("gunicorn", "gunicorn, its defaults (1 sync worker)",
                  ["gunicorn", "--chdir", "/app", "-b", "127.0.0.1:{PORT}", "app:app"]),
        # The tutorial this project grew from: workers = 5, worker_class = "gevent".
        Contender("gunicorn-gevent", "gunicorn, 5 gevent workers",
                  ["gunicorn", "--chdir", "/app", "-w", "5", "-k", "gevent",
                   "-b", "127.0.0.1:{PORT}", "app:app"]),
        # uWSGI's own HTTP router, with flaskbox's default processes and threads.
        Contender("uwsgi-http", f"bare uwsgi --http, {processes} processes x {threads} threads",
                  ["uwsgi", "--http", "127.0.0.1:{PORT}", "--master", "--processes", str(processes),
                   "--threads", str(threads), "--chdir", "/app", "--module", "app:app"]),
        Contender("flask-dev", "Flask dev server (flaskbox -d debug)", ["-d", "debug"]),
    ]


def traffic_contenders() -> list[Contender]:
    """The servers traffic.py measures, each with its own defaults."""
    by_name = {c.name: c for c in contenders(1, 1)}
    return [
        by_name["flaskbox"], by_name["granian"],
        # gunicorn's threaded worker as its docs size it: 2 x CPUs + 1
        # processes, a few threads each.
        Contender("gunicorn-gthread", "gunicorn, 5 gthread workers x 4 threads",
                  ["gunicorn", "--chdir", "/app", "-w", "5", "-k", "gthread", "--threads", "4",
                   "-b", "127.0.0.1:{PORT}", "app:app"]),
        by_name["gunicorn-gevent"],
    ]


def levers(docker_args: tuple[str, ...]) -> list[Contender]:
    """flaskbox with one setting changed at a time, against its defaults:
    what each lever is worth, measured rather than assumed (--levers)."""
    variants = {
        "defaults": {},
        "no recycling": {"UWSGI_MAX_REQUESTS": "0"},
        "4 processes x 1 thread": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "1"},
        "4 processes x 4 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "4"},
        "4 processes x 8 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "8"},
        "4 processes x 32 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "32"},
        "2 processes x 32 threads": {"UWSGI_PROCESSES": "2", "UWSGI_THREADS": "32"},
        "1 nginx worker": {"NGINX_WORKER_PROCESSES": "1"},
        "no thunder lock": {"UWSGI_THUNDER_LOCK": "false"},
        "CPU affinity": {"UWSGI_CPU_AFFINITY": "1"},
        "JSON access log": {"LOG_FORMAT": "json"},
    }
    return [Contender("flaskbox" if name == "defaults" else f"flaskbox, {name}", f"flaskbox, {name}", [],
                      env=env, docker_args=docker_args) for name, env in variants.items()]


# What each of nginx.conf's features costs, measured alone (--features): the
# text to change in nginx.conf to take that feature out, and what replaces it.
# Every text must be found, so an edit of nginx.conf that moves one fails here
# loudly instead of measuring nothing.
FEATURE_EDITS = {
    "access log": [
        # The rest of the line, the health exemption's condition, becomes a comment.
        ("access_log /dev/stdout ${LOG_FORMAT} buffer=64k flush=1s", "access_log off; #")],
    "health requests left out of the log": [
        (" if=$flaskbox_logged;", ";")],
    "request id": [
        ("add_header X-Request-ID $flaskbox_request_id always;", ""),
        ("proxy_set_header X-Request-ID $flaskbox_request_id;", ""),
        (" id=$flaskbox_request_id", "")],
    "request id map (the incoming id's check)": [
        ('default $request_id;\n        "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id;',
         "default $request_id;")],
    "hardening and Retry-After headers": [
        ("add_header X-Content-Type-Options $flaskbox_nosniff always;", ""),
        ("add_header X-Frame-Options $flaskbox_frame_options always;", ""),
        ("add_header Referrer-Policy $flaskbox_referrer_policy always;", ""),
        ("add_header Retry-After $flaskbox_retry_after always;", "")],
    "host maps and ALLOWED_HOSTS": [
        ("if ($flaskbox_refuse_host) {\n            return 400;\n        }", ""),
        ("proxy_set_header Host $flaskbox_host;", "proxy_set_header Host $http_host;"),
        ("$remote_port $flaskbox_server_port", "$remote_port $server_port")],
    "forwarded headers from trusted proxies": [
        (f"proxy_set_header {name} $flaskbox_{variable};", "")
        for name, variable in [("X-Forwarded-For", "forwarded_for"), ("X-Forwarded-Proto", "forwarded_proto"),
                               ("X-Forwarded-Host", "forwarded_host"), ("X-Forwarded-Port", "forwarded_port"),
                               ("X-Forwarded-Prefix", "forwarded_prefix"), ("Forwarded", "forwarded")]],
    "per-client and upload limits": [
        ("limit_conn flaskbox_clients ${CONNECTIONS_PER_CLIENT};", ""),
        ("include ${RUNTIME_DIR}/nginx/upload-limits.conf;", "")],
}


def without_features(template: str, names: list[str]) -> str:
    """nginx.conf with the named features taken out."""
    for name in names:
        for old, new in FEATURE_EDITS[name]:
            if old not in template:
                raise SystemExit(f"bench: nginx.conf no longer has {old!r} ({name}): update FEATURE_EDITS")
            template = template.replace(old, new)
    return template


def features(docker_args: tuple[str, ...], workdir: Path) -> list[Contender]:
    """flaskbox with one nginx feature taken out at a time, and with all of
    them out: each one's nginx.conf is mounted over the image's template."""
    template = (REPO / "nginx.conf").read_text()
    variants = {"flaskbox": [], **{f"flaskbox, no {name}": [name] for name in FEATURE_EDITS},
                "flaskbox, none of these": list(FEATURE_EDITS)}
    entrants = []
    for number, (label, names) in enumerate(variants.items()):
        conf = workdir / f"nginx-{number}.conf"
        conf.write_text(without_features(template, names))
        conf.chmod(0o644)
        mount = ("-v", f"{conf}:/etc/flaskbox/nginx.conf:ro") if names else ()
        entrants.append(Contender(label, label, [], docker_args=(*docker_args, *mount)))
    return entrants


# --- measurement -----------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
# Process groups whose CPU is reported per request; every other command in a
# contender's container (uwsgi, gunicorn, granian, python3) is its app server.
NGINX = "nginx"
IDLE_COMMANDS = {"tini", "bash", "entry-point.sh", "sleep"}


def parse_wrk(output: str) -> dict:
    """requests/s, p50/p99 in ms, and errors from `wrk --latency` output."""
    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s*{pct}%\s+([\d.]+)(\w+)", output, re.MULTILINE).groups()
        return float(value) * UNITS[unit]

    errors = 0
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "errors": errors,
    }


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(port: int, path: str, seconds: float) -> dict:
    """One wrk run; with the CPU seconds wrk itself used."""
    before = children_cpu_seconds()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}{path}"],
                         check=True, capture_output=True, text=True, timeout=seconds + 60)
    return {**parse_wrk(out.stdout), "client_cpu_s": children_cpu_seconds() - before}


def cpu_groups(container: Container, run) -> tuple[dict[str, float], dict]:
    """CPU seconds the container's process groups used during `run()`:
    nginx's processes, read one by one, and the app server's, which is the
    rest of the container's cgroup account (so a worker recycled meanwhile
    still counts)."""
    def nginx_seconds(used: dict[str, tuple[str, float]]) -> float:
        return sum(seconds for command, seconds in used.values() if command == NGINX)

    def idle_seconds(used: dict[str, tuple[str, float]]) -> float:
        return sum(seconds for command, seconds in used.values() if command in IDLE_COMMANDS)

    before, total_before = container.cpu_seconds(), container.cpu_total_seconds()
    result = run()
    after, total_after = container.cpu_seconds(), container.cpu_total_seconds()
    nginx = nginx_seconds(after) - nginx_seconds(before)
    idle = idle_seconds(after) - idle_seconds(before)
    return {"nginx": nginx, "app server": total_after - total_before - nginx - idle}, result


def measure(container: Container, path: str, seconds: float) -> dict:
    """wrk against `path`, and the CPU microseconds each process group (the
    container's nginx, its app server, and wrk) spent per request."""
    used, result = cpu_groups(container, lambda: wrk(container.port, path, seconds))
    requests = max(result["requests"], 1)
    cpu = {group: seconds / requests * 1e6 for group, seconds in used.items()}
    cpu["client"] = result.pop("client_cpu_s") / requests * 1e6
    result["cpu_us_per_request"] = {group: round(value, 1) for group, value in cpu.items()}
    return result


def load_runs(entrants: list[Contender], routes: dict[str, str], rounds: int, seconds: float) -> dict:
    """wrk against every contender and route, interleaved round by round."""
    runs: dict = {c.name: {route: [] for route in routes} for c in entrants}
    total = rounds * len(entrants) * len(routes)
    done = 0
    for rnd in range(1, rounds + 1):
        for contender in entrants:
            for route, path in routes.items():
                done += 1
                result = measure(contender.container, path, seconds)
                runs[contender.name][route].append(result)
                cpu = result["cpu_us_per_request"]
                log(f"[{done}/{total}] round {rnd} {contender.name:16} {route:9} "
                    f"{result['rps']:9.0f} req/s  p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}  "
                    f"CPU µs/request nginx {cpu['nginx']:.0f} app {cpu['app server']:.0f} "
                    f"wrk {cpu['client']:.0f}")
    return runs


def summarise(runs: dict) -> dict:
    """Medians per contender and route, and ratios to flaskbox."""
    summary: dict = {}
    for name, routes in runs.items():
        summary[name] = {}
        for route, results in routes.items():
            groups = results[0]["cpu_us_per_request"]
            summary[name][route] = {
                "rps": statistics.median(r["rps"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "errors": sum(r["errors"] for r in results),
                "cpu_us_per_request": {group: round(statistics.median(
                    r["cpu_us_per_request"][group] for r in results), 1) for group in groups},
            }
    for name, routes in summary.items():
        for route, medians in routes.items():
            base = summary["flaskbox"][route]
            medians["rps_ratio_to_flaskbox"] = round(medians["rps"] / base["rps"], 3)
            medians["p99_ratio_to_flaskbox"] = round(medians["p99_ms"] / base["p99_ms"], 3)
            # flaskbox's throughput over this one's, round by round: both ran
            # within seconds of each other, so the spread shows the noise.
            medians["flaskbox_rps_ratio_by_round"] = [
                round(ours["rps"] / theirs["rps"], 2)
                for ours, theirs in zip(runs["flaskbox"][route], runs[name][route], strict=True)]
    return summary


# --- the image itself -------------------------------------------------------

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


# --- report ----------------------------------------------------------------

def chart(summary: dict, image: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    routes = list(next(iter(summary.values())))
    fig, (rps_ax, p99_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(routes)
    for i, route in enumerate(routes):
        xs = [n + (i - (len(routes) - 1) / 2) * width for n in range(len(names))]
        rps_ax.bar(xs, [summary[name][route]["rps"] for name in names], width, label=route)
        p99_ax.bar(xs, [summary[name][route]["p99_ms"] for name in names], width, label=route)
    titles = ((rps_ax, "requests/s (higher is better)"), (p99_ax, "p99 latency, ms (lower is better)"))
    for ax, title in titles:
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_title(title)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    p99_ax.set_yscale("log")
    fig.suptitle(f"{CONNECTIONS} connections, medians; flaskbox cold start "
                 f"{image['cold_start_s']['median']:.2f} s, idle {image['idle_memory_mb']['rss']:.0f} MB RSS")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    docker_version = docker("version", "-f", "{{.Server.Version}}", check=False).stdout.strip()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {"cpus": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": platform.release(),
            "docker": docker_version, "wrk": wrk_version.split("[")[0].strip()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 s per contender, hello only, one round")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where latest.json/png go")
    parser.add_argument("--base-image", required=True, help="BASE_IMAGE for the build")
    parser.add_argument("--second-base", help="another BASE_IMAGE: flaskbox on it joins the run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    variants = parser.add_mutually_exclusive_group()
    variants.add_argument("--levers", action="store_true",
                          help="flaskbox with one setting changed at a time, hello and realistic only")
    variants.add_argument("--features", action="store_true",
                          help="flaskbox with one nginx feature taken out at a time (nginx.conf)")
    variants.add_argument("--traffic", action="store_true",
                          help="the waiting route, slow downloads and open streams against the peers")
    variants.add_argument("--profile", action="store_true",
                          help="perf and py-spy samples of flaskbox under wrk (hello), --seconds long")
    parser.add_argument("--cpus", type=float,
                        help="with --levers or --features: limit every container to this many CPUs")
    return parser.parse_args()


def default_pool() -> tuple[int, int]:
    """flaskbox's default uWSGI processes and threads on this machine."""
    out = docker("run", "--rm", "--network", "host", "-e", "PORT=8080", PRODUCT_TAG, "python3", "-c",
                 "from flaskbox import settings; values = settings.resolve('production').values; "
                 "print(values['UWSGI_PROCESSES'], values['UWSGI_THREADS'])").stdout
    processes, threads = out.split()[-2:]
    return int(processes), int(threads)


def race(entrants: list[Contender], routes: dict[str, str], rounds: int, seconds: float) -> dict:
    """Start every contender, warm it up, and run the interleaved rounds."""
    try:
        for contender in entrants:
            log(f"starting {contender.name}: {contender.label}")
            contender.start()
            wrk(contender.port, "/", 1)  # warm up: imports, caches, first forks
        return load_runs(entrants, routes, rounds, seconds)
    finally:
        for contender in entrants:
            contender.stop()


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


def goals(summary: dict, image: dict) -> dict:
    """The targets of docs/BENCHMARKS.md, each as measured in this run."""
    hello = summary["flaskbox"]["hello"]

    def against(name: str) -> list:
        other = summary[name]["hello"]
        return [round(hello["rps"] / other["rps"], 2), round(hello["p99_ms"] / other["p99_ms"], 2),
                {"throughput by round": other["flaskbox_rps_ratio_by_round"]}]

    return {
        "throughput, p99 vs tiangolo-config: >= 1.25, <= 1": against("tiangolo-config"),
        "throughput, p99 vs granian: >= 1.0, <= 0.5": against("granian"),
        "throughput vs gunicorn-gevent: >= 1.8": against("gunicorn-gevent")[0],
        "p99_ms < 15 with 0 errors": [hello["p99_ms"], hello["errors"]],
        "cold_start_s < 1": image["cold_start_s"]["median"],
        "idle_stop_s < 1": image["idle_stop_s"]["median"],
        "idle_memory_mb < 100 (RSS, PSS)": [image["idle_memory_mb"]["rss"], image["idle_memory_mb"]["pss"]],
        "added_mb < 100": image["added_mb"],
    }


def worker_pid(container: Container, title: str = "uWSGI worker 1") -> str:
    """The host PID of the process whose command line ends with `title`."""
    for pid in container.host_pids():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except FileNotFoundError:
            continue
        if command.endswith(title):
            return pid
    raise SystemExit(f"bench: no {title!r} in {container.name}")


def perf_shares(report: str) -> list[dict]:
    """`perf report --sort comm,dso` lines ("  59.55%  uwsgi  libpython3.11.so.1.0")
    as shares of all CPU samples, the larger ones only."""
    shares = []
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%") and float(parts[0][:-1]) >= 0.3:
            shares.append({"percent": float(parts[0][:-1]), "process": parts[1],
                           "object": " ".join(parts[2:])})
    return shares


def python_shares(raw: str) -> dict:
    """py-spy's raw stacks ("frame;frame;... count") as the share of the
    worker's samples spent in each package's own code (the innermost frame's
    file), and in flaskbox.serve with what it calls."""
    own, total, serve = {}, 0, 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = [frame for frame in stack.split(";") if frame], int(count)
        total += samples
        if not frames:
            package = "no Python frame (uWSGI's C code: accept, parse, environ, write)"
        else:
            where = frames[-1][frames[-1].rfind("(") + 1:].split(":")[0]
            package = where.split("/")[0] if "/" in where else where
        own[package] = own.get(package, 0) + samples
        serve += samples if any("flaskbox/serve.py" in frame for frame in frames) else 0
    percent = {name: round(100 * samples / total, 1) for name, samples in
               sorted(own.items(), key=lambda item: -item[1]) if 100 * samples / total >= 0.5}
    return {"samples": total, "own_code_percent": percent,
            "inside_flaskbox_serve_percent": round(100 * serve / total, 1)}


def run_profile(args: argparse.Namespace) -> int:
    """--profile: where the CPU goes while wrk drives flaskbox's hello world.
    perf samples every CPU with the cpu-clock event (hardware counters are
    not available on every machine: `perf stat -e instructions true`); py-spy
    samples uWSGI worker 1's Python stacks over the same seconds."""
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    seconds = args.seconds
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-profile-"))
    try:
        container = start(CONTENDERS_TAG)
        wrk(container.port, "/", 2)  # warm up
        # wrk runs a second longer on each side of the sampled seconds.
        load = subprocess.Popen(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds + 2}s",
                                 "--latency", f"http://127.0.0.1:{container.port}/"],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        spy = subprocess.Popen([py_spy, "record", "--nonblocking", "--pid", worker_pid(container),
                                "--rate", "250", "--duration", str(seconds), "--format", "raw",
                                "--output", str(workdir / "spy.txt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["perf", "record", "-q", "-F", "999", "-e", "cpu-clock", "-a",
                        "-o", str(workdir / "perf.data"), "--", "sleep", str(seconds)],
                       check=True, stderr=subprocess.DEVNULL)
        spy.wait()
        wrk_out, _ = load.communicate()
        report = subprocess.run(["perf", "report", "-i", str(workdir / "perf.data"), "--stdio",
                                 "--no-children", "--sort", "comm,dso"],
                                capture_output=True, text=True, check=True).stdout
        results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                   "load": parse_wrk(wrk_out), "cpu_samples": perf_shares(report),
                   "worker_python": python_shares((workdir / "spy.txt").read_text())}
    finally:
        CONTAINERS.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    (args.out / "profile.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    log(f"wrk: {results['load']}")
    for share in results["cpu_samples"]:
        log(f"{share['percent']:5.1f} %  {share['process']:10} {share['object']}")
    log(f"uWSGI worker 1, {results['worker_python']['samples']} samples, own code by package:")
    for package, percent in results["worker_python"]["own_code_percent"].items():
        log(f"{percent:5.1f} %  {package}")
    inside = results["worker_python"]["inside_flaskbox_serve_percent"]
    log(f"inside flaskbox/serve.py, with all it calls (the app): {inside} %")
    return 0


def run_traffic(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--traffic: traffic.py's three shapes, written to traffic.json/png."""
    import traffic
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    entrants = traffic_contenders()
    try:
        for contender in entrants:
            log(f"starting {contender.name}: {contender.label}")
            contender.start()
            wrk(contender.port, "/", 1)  # warm up
        measured = traffic.measure(entrants, rounds, seconds, measure, args.smoke, log)
    finally:
        CONTAINERS.cleanup()
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": args.smoke, "machine": machine(),
               "contenders": {c.name: c.label for c in entrants}, "results": measured}
    (args.out / "traffic.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    traffic.chart(measured, args.out / "traffic.png")
    log(f"traffic: {args.out / 'traffic.json'}, {args.out / 'traffic.png'}")
    return 0


def run_variants(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--levers or --features: flaskbox against variants of itself, written
    to levers.json or features.json (with --cpus N: levers-N-cpus.json, ...)."""
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    docker_args = ("--cpus", str(args.cpus)) if args.cpus else ()
    kind = "levers" if args.levers else "features"
    routes = {"hello": ROUTES["hello"], "realistic": ROUTES["realistic"], "wait 5 ms": "/wait"}
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-bench-"))
    try:
        entrants = levers(docker_args) if args.levers else features(docker_args, workdir)
        summary = summarise(runs := race(entrants, routes, rounds, seconds))
    finally:
        CONTAINERS.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "cpus": args.cpus,
               "runs": runs, "summary": summary}
    name = f"{kind}-{args.cpus:g}-cpus.json" if args.cpus else f"{kind}.json"
    (args.out / name).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    for contender, routes_of in summary.items():
        for route, medians in routes_of.items():
            ratio = medians["rps_ratio_to_flaskbox"]
            log(f"{contender:32} {route:9} {medians['rps']:8.0f} req/s ({ratio:.2f}x) "
                f"p99 {medians['p99_ms']:6.2f} ms  CPU µs/request {medians['cpu_us_per_request']}")
    return 0


def main() -> int:
    args = parse_args()
    rounds, seconds, routes = args.rounds, args.seconds, ROUTES
    if args.smoke:
        rounds, seconds, routes = 1, 2, {"hello": ROUTES["hello"]}
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.levers or args.features:
        return run_variants(args, rounds, seconds)
    if args.profile:
        return run_profile(args)
    if args.traffic:
        return run_traffic(args, rounds, seconds)

    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    if args.second_base:
        build_images(args.second_base, SECOND_PRODUCT_TAG, SECOND_CONTENDERS_TAG)
    entrants = contenders(*default_pool())
    if args.second_base:
        entrants.insert(1, Contender("flaskbox-second-base", f"flaskbox production on {args.second_base}", [],
                                     image=SECOND_CONTENDERS_TAG))
    try:
        summary = summarise(runs := race(entrants, routes, rounds, seconds))
        image = measure_image(args.base_image, args.smoke)
        log("streams: Server-Sent Event clients held with ordinary traffic, per worker class")
        stream_clients, stream_seconds = (50, 6) if args.smoke else (1500, 20)
        streams = {worker_class: streams_held(worker_class, stream_clients, stream_seconds)
                   for worker_class in ("sync", "gevent")}
        second_base = measure_second_base(args.second_base, args.smoke) if args.second_base else None
    finally:
        CONTAINERS.cleanup()
    targets = goals(summary, image)
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "smoke": args.smoke,
        "machine": machine(),
        "settings": {"connections": CONNECTIONS, "wrk_threads": 2, "seconds_per_run": seconds,
                     "rounds": rounds, "routes": routes, "base_image": args.base_image,
                     "contenders": {c.name: c.label for c in entrants},
                     "where": "containers from one image (same base, Python and app), --network host"},
        "runs": runs,
        "summary": summary,
        "image": image,
        "streams": streams,
        "second_base": second_base,
        "targets": targets,
        "duration_s": round(time.monotonic() - started, 1),
    }
    (args.out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(summary, image, args.out / "latest.png")
    log(f"done in {results['duration_s']:.0f} s: {args.out / 'latest.json'}, {args.out / 'latest.png'}")
    for name, value in targets.items():
        log(f"target {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
