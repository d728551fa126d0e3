"""The wrk runs: one run parsed, the CPU each process group spent on it,
every contender and route interleaved round by round, and their medians."""

from __future__ import annotations

import re
import resource
import statistics
import subprocess

from harness import CONNECTIONS, log
from servers import Contender

from containers import Container

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


def start_warm(entrants: list[Contender]) -> None:
    """Start every contender and warm it up with a second of wrk."""
    for contender in entrants:
        log(f"starting {contender.name}: {contender.label}")
        contender.start()
        wrk(contender.port, "/", 1)  # warm up: imports, caches, first forks


def race(entrants: list[Contender], routes: dict[str, str], rounds: int, seconds: float) -> dict:
    """Start every contender, warm it up, and run the interleaved rounds."""
    try:
        start_warm(entrants)
        return load_runs(entrants, routes, rounds, seconds)
    finally:
        for contender in entrants:
            contender.stop()
