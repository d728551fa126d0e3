"""--interpreter: how fast each base's Python runs the same pure-Python
function in its python3 command, in a program that embeds the base's
shared libpythonX.Y.so (as uWSGI was built until issue 61's round), and in
a worker of the image (uWSGI inside python3: the Dockerfile, pyuwsgi).

The function is tests/apps/interpreter/work.py (a 3000-row list of dicts
formatted, and a recursive Fibonacci): pure Python, no C library call to
dilute the interpreter. Each figure is its thread's CPU time, the least of
7 calls, and the median of `rounds` such figures; python3 and the shared
library run one after the other in the image's build stage, the worker and
python3 in one container of the image. Written to interpreter.json."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from harness import CONTAINERS, REPO, log
from image import build_product

from helpers import build_image, docker

# work.py, and main.py that times it in a worker (/work).
APP = REPO / "tests" / "apps" / "interpreter"

# A python3 of its own around the base's shared library: Py_BytesMain is
# what the python3 command's main() calls.
EMBED = '#include <Python.h>\nint main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n'
COMPILE = ("printf '%s' \"$EMBED\" > /tmp/embed.c && gcc -O2 -o /tmp/embed /tmp/embed.c "
           "$(python3-config --includes) $(python3-config --ldflags --embed)")
TIMED = "import sys; sys.path.insert(0, '/work'); import work; print(work.best_of())"


def figures(commands: dict[str, list[str]], rounds: int) -> dict[str, float]:
    """name -> the median of `rounds` runs of its command (each prints ms), interleaved."""
    seen: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            out = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise SystemExit(f"bench: {name} failed: {out.stderr[-1500:]}")
            seen[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: round(statistics.median(values), 2) for name, values in seen.items()}


def shared_library(base_image: str, work: Path, rounds: int) -> dict[str, float]:
    """python3 against a program linked to libpythonX.Y.so, in the build stage."""
    tag = "flaskbox-bench:interpreter-build"
    build_image(REPO, tag, {"BASE_IMAGE": base_image}, target="build")
    name = f"flaskbox-interpreter-{int(time.time())}"
    docker("run", "-d", "--name", name, "--network", "host", "-e", f"EMBED={EMBED}",
           "-v", f"{work}:/work:ro", "--entrypoint", "sleep", tag, "3600")
    try:
        docker("exec", name, "bash", "-c", COMPILE)
        found = figures({"python3": ["docker", "exec", name, "python3", "-c", TIMED],
                         "shared_libpython": ["docker", "exec", name, "/tmp/embed", "-c", TIMED]}, rounds)
        found["python"] = docker("exec", name, "python3", "--version").stdout.strip()
    finally:
        docker("rm", "-f", name, check=False)
    return found


def worker(tag: str, work: Path, rounds: int) -> dict[str, float]:
    """A worker of the image against the same container's python3."""
    c = CONTAINERS.serving(env={"APP_MODULE": "main:app"}, docker_args=("-v", f"{work}:/app:ro"), image=tag)
    try:
        def in_worker() -> str:
            return c.request("/work", timeout=60).text
        found = {"worker": [], "python3_beside": []}
        for _ in range(rounds):
            found["worker"].append(float(in_worker()))
            beside = c.exec("python3", "-c", TIMED.replace("/work", "/app")).stdout
            found["python3_beside"].append(float(beside))
    finally:
        CONTAINERS.cleanup()
    return {name: round(statistics.median(values), 2) for name, values in found.items()}


def run(bases: list[str], out: Path, machine: dict, rounds: int) -> int:
    work = APP
    results = {}
    for base in bases:
        log(f"interpreter: {base}")
        tag = f"flaskbox:interpreter-{base.replace('/', '-').replace(':', '-')}"
        build_product(base, tag=tag)
        found = {**shared_library(base, work, rounds), **worker(tag, work, rounds)}
        found["shared_over_python3"] = round(found["shared_libpython"] / found["python3"], 3)
        found["worker_over_python3"] = round(found["worker"] / found["python3_beside"], 3)
        results[base] = found
        log(f"interpreter: {base}: {found}")
        docker("rmi", "-f", tag, check=False)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "rounds": rounds,
              "unit": "ms of the thread's CPU, least of 7 calls; median of the rounds", "bases": results}
    (out / "interpreter.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"interpreter: {out / 'interpreter.json'}")
    return 0
