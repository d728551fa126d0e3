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
from pathlib import Path

from harness import CONNECTIONS, CONTAINERS, CONTENDERS_TAG, PRODUCT_TAG, log
from image import build_images
from report import machine
from runs import parse_wrk, wrk
from servers import start

from helpers import Container


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
