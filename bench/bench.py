"""flaskbox benchmark: production mode against its peers, in one run.

    bench/run.sh                 the full run (about 7 minutes on 2 cores)
    bench/run.sh --smoke         2 s per contender, one route, one round
    bench/run.sh --out DIR       write results somewhere else

Every contender serves the same app (bench/app) from the same image, with
--network host on its own loopback port; wrk drives each in turn, interleaved
round by round so that a slow moment of the machine hits all of them alike.
Results: RESULTS_DIR/latest.json and latest.png; docs/BENCHMARKS.md explains
them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The test suite's clients: one load generator and one SSE client for both.
sys.path.insert(0, str(REPO / "tests"))
from load import Load, percentile  # noqa: E402
from sse import Crowd  # noqa: E402

PRODUCT_TAG = "flaskbox:bench"  # the image under test, built from the repo
CONTENDERS_TAG = "flaskbox-bench:contenders"  # plus gunicorn/gevent and bench/app
# The same two, built on the second base (--second-base): a new Python or
# distribution whose figures regress shows up in the same run.
SECOND_PRODUCT_TAG = "flaskbox:bench-second"
SECOND_CONTENDERS_TAG = "flaskbox-bench:contenders-second"
CONNECTIONS = 64
ROUTES = {"hello": "/", "template": "/page", "static": "/static/blob.bin"}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sh(*cmd: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- contenders ------------------------------------------------------------

@dataclass
class Contender:
    name: str
    label: str
    command: list[str]  # empty: the image's own entry point (production mode)
    extra_args: list[str] = field(default_factory=list)
    image: str = CONTENDERS_TAG
    port: int = 0
    container: str = ""

    def start(self) -> None:
        self.port = free_port()
        self.container = f"flaskbox-bench-{self.name}"
        sh("docker", "rm", "-f", self.container, check=False)
        command = [part.replace("{PORT}", str(self.port)) for part in self.command]
        # --no-healthcheck: the image's check would probe every contender.
        sh("docker", "run", "-d", "--name", self.container, "--network", "host", "--no-healthcheck",
           "-e", f"PORT={self.port}", *self.extra_args, self.image, *command)
        wait_for_200(self.port, "/", timeout=60, container=self.container)

    def stop(self) -> None:
        sh("docker", "rm", "-f", self.container, check=False)


def contenders(processes: int, threads: int) -> list[Contender]:
    """The five servers, each in the configuration users actually run."""
    return [
        Contender("flaskbox", "flaskbox production (nginx + uWSGI)", []),
        Contender("flaskbox-gevent", "flaskbox production, WORKER_CLASS=gevent", [],
                  extra_args=["-e", "WORKER_CLASS=gevent"]),
        # The tutorial this project grew from: workers = 5, worker_class = "gevent".
        Contender("gunicorn-gevent", "gunicorn, 5 gevent workers",
                  ["gunicorn", "--chdir", "/app", "-w", "5", "-k", "gevent",
                   "-b", "127.0.0.1:{PORT}", "app:app"]),
        Contender("gunicorn-sync", "gunicorn, 5 sync workers",
                  ["gunicorn", "--chdir", "/app", "-w", "5", "-b", "127.0.0.1:{PORT}", "app:app"]),
        # uWSGI's own HTTP router, with flaskbox's default processes and threads.
        Contender("uwsgi-http", f"bare uwsgi --http, {processes} processes x {threads} threads",
                  ["uwsgi", "--http", "127.0.0.1:{PORT}", "--master", "--processes", str(processes),
                   "--threads", str(threads), "--chdir", "/app", "--module", "app:app"]),
        Contender("flask-dev", "Flask dev server (flaskbox -d debug)", ["-d", "debug"]),
    ]


# --- measurement -----------------------------------------------------------

def wait_for_200(port: int, path: str, timeout: float, container: str = "") -> float:
    """Polls every 10 ms; returns seconds until the first 200."""
    started = time.monotonic()
    polls = 0
    while time.monotonic() - started < timeout:
        polls += 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass
        if container and polls % 50 == 0 and not running(container):
            break  # exited: say so now, with its log
        time.sleep(0.01)
    logs = sh("docker", "logs", container, check=False) if container else None
    raise RuntimeError(f"no 200 on port {port} after {timeout}s\n{logs.stdout + logs.stderr if logs else ''}")


def running(container: str) -> bool:
    state = sh("docker", "inspect", "-f", "{{.State.Running}}", container, check=False).stdout.strip()
    return state == "true"


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


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


def wrk(port: int, path: str, seconds: int) -> dict:
    out = sh("wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
             f"http://127.0.0.1:{port}{path}", timeout=seconds + 60)
    return parse_wrk(out.stdout)


def container_rss_mb(container: str) -> float:
    """Sum of VmRSS over every process in the container, read from the host
    (`docker top` gives their host PIDs), so no probe process counts."""
    total_kb = 0
    for pid in sh("docker", "top", container, "-eo", "pid").stdout.split()[1:]:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def load_runs(entrants: list[Contender], routes: dict[str, str], rounds: int, seconds: float) -> dict:
    """wrk against every contender and route, interleaved round by round."""
    runs: dict = {c.name: {route: [] for route in routes} for c in entrants}
    total = rounds * len(entrants) * len(routes)
    done = 0
    for rnd in range(1, rounds + 1):
        for contender in entrants:
            for route, path in routes.items():
                done += 1
                result = wrk(contender.port, path, seconds)
                runs[contender.name][route].append(result)
                log(f"[{done}/{total}] round {rnd} {contender.name:16} {route:8} "
                    f"{result['rps']:9.0f} req/s  p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}")
    return runs


def summarise(runs: dict) -> dict:
    """Medians per contender and route, and ratios to flaskbox."""
    summary: dict = {}
    for name, routes in runs.items():
        summary[name] = {}
        for route, results in routes.items():
            summary[name][route] = {
                "rps": statistics.median(r["rps"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "errors": sum(r["errors"] for r in results),
            }
    for routes in summary.values():
        for route, medians in routes.items():
            base = summary["flaskbox"][route]
            medians["rps_ratio_to_flaskbox"] = round(medians["rps"] / base["rps"], 3)
            medians["p99_ratio_to_flaskbox"] = round(medians["p99_ms"] / base["p99_ms"], 3)
    return summary


# --- the image itself -------------------------------------------------------

def start_product(name: str, tag: str = PRODUCT_TAG) -> int:
    """`docker run -d` of the image under test, default settings; its port."""
    port = free_port()
    sh("docker", "rm", "-f", name, check=False)
    sh("docker", "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}", tag)
    return port


def cold_starts(count: int, tag: str = PRODUCT_TAG) -> list[float]:
    """Seconds from `docker run` to the first 200, `count` times."""
    times = []
    for i in range(count):
        name = f"flaskbox-bench-cold-{i}"
        started = time.monotonic()
        wait_for_200(start_product(name, tag), "/", timeout=30, container=name)
        times.append(time.monotonic() - started)
        sh("docker", "rm", "-f", name, check=False)
    return times


def idle_stops(count: int) -> list[float]:
    """Seconds `docker stop` takes once the container has answered."""
    times = []
    for i in range(count):
        name = f"flaskbox-bench-stop-{i}"
        wait_for_200(start_product(name), "/", timeout=30, container=name)
        started = time.monotonic()
        sh("docker", "stop", name)
        times.append(time.monotonic() - started)
        exit_code = sh("docker", "inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        sh("docker", "rm", "-f", name, check=False)
        if exit_code != "0":
            raise RuntimeError(f"idle stop exited with {exit_code}")
    return times


def idle_memory_mb(tag: str = PRODUCT_TAG) -> float:
    """Default settings, after a few requests, with nothing in flight."""
    name = "flaskbox-bench-memory"
    port = start_product(name, tag)
    try:
        wait_for_200(port, "/", timeout=30, container=name)
        for _ in range(20):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        return container_rss_mb(name)
    finally:
        sh("docker", "rm", "-f", name, check=False)


def streams_held(worker_class: str, clients: int, seconds: float) -> dict:
    """`clients` Server-Sent Event streams (an event a second) held for
    `seconds` while 4 connections make ordinary requests: what the streams
    got, what the ordinary requests got, and the memory it took."""
    name = f"flaskbox-bench-streams-{worker_class}"
    port = free_port()
    sh("docker", "rm", "-f", name, check=False)
    sh("docker", "run", "-d", "--name", name, "--network", "host", "--no-healthcheck", "-e", f"PORT={port}",
       "-e", f"WORKER_CLASS={worker_class}", CONTENDERS_TAG)
    try:
        wait_for_200(port, "/", timeout=60, container=name)
        idle = container_rss_mb(name)
        path = f"/events?count={int(seconds) + 10}&every=1"
        with Crowd(port, path, clients, seconds) as crowd, \
                Load(port, path="/page", connections=4, seconds=seconds) as load:
            time.sleep(seconds / 2)  # the measurement's schedule: memory midway
            held = container_rss_mb(name)
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
        sh("docker", "rm", "-f", name, check=False)


def image_size(base_image: str) -> dict:
    size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", PRODUCT_TAG).stdout)
    base = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", base_image).stdout)
    return {"image_mb": round(size / 1e6, 1), "base_mb": round(base / 1e6, 1),
            "added_mb": round((size - base) / 1e6, 1)}


def build_images(base_image: str, product: str, contenders_tag: str) -> None:
    """The image under test on `base_image`, and the contenders' image on it."""
    log(f"building {product} on {base_image}")
    build_product(base_image, tag=product)
    log(f"building {contenders_tag} (adds gunicorn, gevent, bench/app)")
    result = sh("docker", "build", "--network", "host", "--force-rm", "--build-arg",
                f"FLASKBOX_IMAGE={product}", "-t", contenders_tag, str(BENCH), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"bench image build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def python_version(tag: str) -> str:
    return sh("docker", "run", "--rm", "--network", "host", "--entrypoint", "python3", tag,
              "--version").stdout.strip()


def build_product(base_image: str, context: Path = REPO, tag: str = PRODUCT_TAG) -> float:
    started = time.monotonic()
    result = sh("docker", "build", "--network", "host", "--force-rm",
                "--build-arg", f"BASE_IMAGE={base_image}", "-t", tag, str(context), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"docker build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
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
            sh("docker", "rmi", "-f", tag, check=False)


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
                 f"{image['cold_start_s']['median']:.2f} s, idle {image['idle_memory_mb']:.0f} MB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    docker_version = sh("docker", "version", "-f", "{{.Server.Version}}", check=False).stdout.strip()
    return {"cpus": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": platform.release(),
            "docker": docker_version, "wrk": sh("wrk", "--version", check=False).stdout.split("[")[0].strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 s per contender, hello only, one round")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where latest.json/png go")
    parser.add_argument("--base-image", required=True, help="BASE_IMAGE for the build")
    parser.add_argument("--second-base", help="another BASE_IMAGE: flaskbox on it joins the run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    rounds, seconds, routes = args.rounds, args.seconds, ROUTES
    if args.smoke:
        rounds, seconds, routes = 1, 2, {"hello": ROUTES["hello"]}
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)

    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    if args.second_base:
        build_images(args.second_base, SECOND_PRODUCT_TAG, SECOND_CONTENDERS_TAG)
    processes, threads = (int(n) for n in sh(
        "docker", "run", "--rm", "--network", "host", "-e", "PORT=8080", PRODUCT_TAG, "python3", "-c",
        "from flaskbox import settings; values = settings.resolve('production').values; "
        "print(values['UWSGI_PROCESSES'], values['UWSGI_THREADS'])").stdout.split()[-2:])

    entrants = contenders(processes, threads)
    if args.second_base:
        entrants.insert(1, Contender("flaskbox-second-base", f"flaskbox production on {args.second_base}", [],
                                     image=SECOND_CONTENDERS_TAG))
    try:
        for contender in entrants:
            log(f"starting {contender.name}: {contender.label}")
            contender.start()
            wrk(contender.port, "/", 1)  # warm up: imports, caches, first forks
        runs = load_runs(entrants, routes, rounds, seconds)
    finally:
        for contender in entrants:
            contender.stop()
    summary = summarise(runs)

    log("measuring the image: cold start, idle stop, memory, size, rebuild")
    starts = cold_starts(3 if args.smoke else 10)
    stops = idle_stops(1 if args.smoke else 5)
    image = {
        "cold_start_s": {"median": round(statistics.median(starts), 3), "all": [round(s, 3) for s in starts]},
        "idle_stop_s": {"median": round(statistics.median(stops), 3), "all": [round(s, 3) for s in stops]},
        "idle_memory_mb": round(idle_memory_mb(), 1),
        **image_size(args.base_image),
        "rebuild_after_app_change_s": round(rebuild_after_app_change(args.base_image), 2),
    }
    log("streams: Server-Sent Event clients held with ordinary traffic, per worker class")
    stream_clients, stream_seconds = (50, 6) if args.smoke else (1500, 20)
    streams = {worker_class: streams_held(worker_class, stream_clients, stream_seconds)
               for worker_class in ("sync", "gevent")}
    second_base = None
    if args.second_base:
        log(f"measuring the image on {args.second_base}: cold start, memory")
        second_starts = cold_starts(3 if args.smoke else 10, SECOND_PRODUCT_TAG)
        second_base = {"base_image": args.second_base,
                       "cold_start_s": {"median": round(statistics.median(second_starts), 3),
                                        "all": [round(s, 3) for s in second_starts]},
                       "idle_memory_mb": round(idle_memory_mb(SECOND_PRODUCT_TAG), 1),
                       "python": python_version(SECOND_PRODUCT_TAG)}
    hello = summary["flaskbox"]["hello"]
    gevent = summary["gunicorn-gevent"]["hello"]
    targets = {
        "throughput_vs_gunicorn_gevent >= 1.8": round(hello["rps"] / gevent["rps"], 2),
        "p99_ms < 15 with 0 errors": [hello["p99_ms"], hello["errors"]],
        "cold_start_s < 1": image["cold_start_s"]["median"],
        "idle_stop_s < 1": image["idle_stop_s"]["median"],
        "idle_memory_mb < 100": image["idle_memory_mb"],
        "added_mb < 100": image["added_mb"],
    }
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
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(summary, image, args.out / "latest.png")
    log(f"done in {results['duration_s']:.0f} s: {args.out / 'latest.json'}, {args.out / 'latest.png'}")
    for name, value in targets.items():
        log(f"target {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
