"""--profile: perf and py-spy samples of flaskbox under wrk, and the parsers
that turn what they write into shares."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import hello
from harness import CONNECTIONS, CONTAINERS, CONTENDERS_TAG, PRODUCT_TAG, REPO, log
from image import build_images, default_pool
from report import machine
from runs import measure, parse_wrk, wrk
from servers import bare_pass, contenders, start

from containers import Container


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
    file), and in flaskbox.request.serve with what it calls."""
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
        serve += samples if any("flaskbox/request/serve.py" in frame for frame in frames) else 0
    percent = {name: round(100 * samples / total, 1) for name, samples in
               sorted(own.items(), key=lambda item: -item[1]) if 100 * samples / total >= 0.5}
    return {"samples": total, "own_code_percent": percent,
            "inside_flaskbox_serve_percent": round(100 * serve / total, 1)}


def symbol_shares(report: str, least: float = 1.0) -> list[dict]:
    """`perf report --comm uwsgi --sort dso,sym` lines ("  6.10%  [kernel.kallsyms]
    [k] _raw_spin_unlock_irqrestore") as shares of that process's samples,
    the larger ones only."""
    shares = []
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].endswith("%") and float(parts[0][:-1]) >= least:
            shares.append({"percent": float(parts[0][:-1]), "object": parts[1],
                           "symbol": " ".join(parts[3:])})
    return shares


# What --profile samples: hello world (the cost of the request path itself)
# and the 5 ms route of --traffic (what a wait costs with 16 threads a
# process), on flaskbox and, for the contrast, on Granian (perf only: its
# workers are not uWSGI's).
PROFILED = {"hello": "/", "waiting": "/wait"}


def unprofiled(container: Container, path: str, seconds: int) -> dict:
    """wrk with no profiler: requests/s and CPU a request."""
    wrk(container.port, path, 2)  # warm up
    return measure(container, path, seconds)


def profile_route(container: Container, path: str, seconds: int, workdir: Path,
                  python_worker: bool) -> dict:
    """One route: its costs unprofiled, then perf over every CPU (and py-spy
    over uWSGI worker 1, holding the GIL, when python_worker) while wrk
    drives it."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    plain = unprofiled(container, path, seconds)
    # wrk runs a second longer on each side of the sampled seconds.
    load = subprocess.Popen(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds + 2}s",
                             "--latency", f"http://127.0.0.1:{container.port}{path}"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    # --gil: only the thread that holds Python's lock, which is the one
    # running Python; the worker's other 15 threads wait or sleep.
    spy = subprocess.Popen([py_spy, "record", "--nonblocking", "--gil", "--pid", worker_pid(container),
                            "--rate", "250", "--duration", str(seconds), "--format", "raw",
                            "--output", str(workdir / "spy.txt")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if python_worker else None
    subprocess.run(["perf", "record", "-q", "-F", "999", "-e", "cpu-clock", "-a",
                    "-o", str(workdir / "perf.data"), "--", "sleep", str(seconds)],
                   check=True, stderr=subprocess.DEVNULL)
    if spy:
        spy.wait()
    wrk_out, _ = load.communicate()

    def report(*sort: str) -> str:
        return subprocess.run(["perf", "report", "-i", str(workdir / "perf.data"), "--stdio",
                               "--no-children", *sort], capture_output=True, text=True, check=True).stdout

    result = {"path": path, "unprofiled": plain, "load": parse_wrk(wrk_out),
              "cpu_samples": perf_shares(report("--sort", "comm,dso"))}
    if any(share["process"] == "uwsgi" for share in result["cpu_samples"]):
        # uWSGI's own samples by symbol, for flaskbox and for the bare pass alike.
        result["uwsgi_symbols"] = symbol_shares(report("--comm", "uwsgi", "--percentage", "relative",
                                                       "--sort", "dso,sym"))
    if any(share["process"] == "nginx" for share in result["cpu_samples"]):
        result["nginx_symbols"] = symbol_shares(report("--comm", "nginx", "--percentage", "relative",
                                                       "--sort", "dso,sym"))
    if spy:
        result["worker_python"] = python_shares((workdir / "spy.txt").read_text())
    return result


def log_route(name: str, result: dict) -> None:
    plain = result["unprofiled"]
    cpu = plain["cpu_us_per_request"]
    log(f"{name} ({result['path']}): unprofiled {plain['rps']:.0f} req/s, CPU µs a request "
        f"nginx {cpu['nginx']:.0f}, app server {cpu['app server']:.0f}; profiled {result['load']}")
    for share in result["cpu_samples"]:
        log(f"{share['percent']:5.1f} %  {share['process']:10} {share['object']}")
    for process in ("uwsgi", "nginx"):
        if f"{process}_symbols" in result:
            log(f"{process}'s own samples by symbol:")
            for share in result[f"{process}_symbols"]:
                log(f"{share['percent']:5.1f} %  {share['object']:24} {share['symbol']}")
    if "worker_python" not in result:
        return
    log(f"uWSGI worker 1 holding the GIL, {result['worker_python']['samples']} samples, own code by package:")
    for package, percent in result["worker_python"]["own_code_percent"].items():
        log(f"{percent:5.1f} %  {package}")


def wrapper_cost(calls: int = 20000, repeats: int = 7) -> dict:
    """What flaskbox's own per-request Python (serve.Serve, as the default
    wraps an app: the peer, forwarded headers, the timeout's watch, framing,
    the spool check, Vary, the stream share) costs, timed in this process
    around a bare WSGI app against that app alone: microseconds a call, best
    of `repeats`. The app's body is an iterable with a close(), as Flask's
    is. No uWSGI here: its start_response and writes are not in it."""
    sys.path.insert(0, str(REPO / "lib"))
    from flaskbox.request import outbound, serve
    from flaskbox.request.spool import Spool

    class Body:
        def __init__(self):
            self.parts = [b"Hello, World!"]

        def __iter__(self):
            return iter(self.parts)

        def close(self):
            self.parts = []

    def bare(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return Body()

    def start_response(status, headers, exc_info=None):
        return lambda data: None

    def environ() -> dict:
        return hello.environ(SCRIPT_NAME="")

    with tempfile.TemporaryDirectory() as runtime:
        wrapped = serve.Serve(bare, 60.0, spool=Spool(runtime, 128 << 20, 4), share=outbound.Share(80, 4, 16),
                              compressed=True)
        # What is timed must be a request that reached the app, not a refusal.
        statuses: list[str] = []
        body = b"".join(wrapped(environ(), lambda status, headers, exc_info=None: statuses.append(status)))
        if statuses != ["200 OK"] or body != b"Hello, World!":
            raise SystemExit(f"bench: the wrapper answered {statuses} {body!r}, not the app's 200")

        def best(app) -> float:
            def once():
                body = app(environ(), start_response)
                list(body)
                getattr(body, "close", lambda: None)()
            return min(timeit.repeat(once, number=calls, repeat=repeats)) / calls * 1e6

        alone, around = best(bare), best(wrapped)
    return {"bare_app_us": round(alone, 2), "wrapped_us": round(around, 2),
            "wrapper_us": round(around - alone, 2)}


def run_profile(args: argparse.Namespace) -> int:
    """--profile: where the CPU goes while wrk drives flaskbox's defaults, and
    Granian beside it, on each PROFILED route. perf samples every CPU with
    the cpu-clock event (hardware counters are not available on every
    machine: `perf stat -e instructions true`); py-spy samples uWSGI worker
    1's Python stacks over the same seconds."""
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    granian = next(c for c in contenders(1, 1) if c.name == "granian")
    # The floor beside them: what nginx and uWSGI cost with no feature.
    floor = bare_pass(*default_pool())
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-profile-"))
    results: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                     "loadavg": [float(Path("/proc/loadavg").read_text().split()[0])],
                     "flaskbox": {}, "granian": {}, "bare-pass": {}}
    try:
        # A fresh container for each route: uWSGI worker 1, which py-spy
        # follows, must not reach max-requests and be replaced meanwhile.
        for name, path in PROFILED.items():
            container = start(CONTENDERS_TAG)
            results["flaskbox"][name] = profile_route(container, path, args.seconds, workdir, True)
            container.remove()
        for other in (granian, floor):
            for name, path in PROFILED.items():
                other.start()
                results[other.name][name] = profile_route(other.container, path, args.seconds, workdir, False)
                other.stop()
    finally:
        CONTAINERS.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    results["loadavg"].append(float(Path("/proc/loadavg").read_text().split()[0]))
    results["flaskbox_wrapper"] = wrapper_cost()
    (args.out / "profile.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    log(f"flaskbox's own per-request Python, in process: {results['flaskbox_wrapper']}")
    for server in ("flaskbox", "granian", "bare-pass"):
        for name, result in results[server].items():
            log_route(f"{server} {name}", result)
    return 0
