"""--latency: the tail at the load users run (issue 33).

For each route (hello, the 5 ms route, the realistic page, the 100 KB
static file), Granian's capacity is measured first (wrk -t2 -c64, the same
saturation runs as the full run, for every contender, interleaved); then
every contender gets the same open-loop schedule of requests at 25, 50 and
75 % of that capacity (openloop.c: Poisson arrivals, latency counted from
each request's arrival, so a stall is charged to every request that
arrived during it). Each run records the load average before and after it
(a figure taken while something else ran is worth nothing) and the CPU
each process group spent a request, at that fixed rate: with every server
doing the same work per second, that is the cost a request adds, less
disturbed by saturation's contention. Written to latency.json and
latency.png; the benchmarks' history explains them ("Latency at the load
users run": git show aef2e86:docs/BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harness import BENCH, CONTAINERS, log
from runs import cpu_groups, measure
from servers import Contender

FRACTIONS = (0.25, 0.5, 0.75)
ROUTES = {"hello": "/", "wait 5 ms": "/wait", "realistic": "/realistic", "static 100 KB": "/static/blob.bin"}
# The contenders the tail is compared against, with flaskbox and its floor.
COMPARED = ("flaskbox", "tiangolo-config", "granian", "bare-pass")
# --floor (issue 42): flaskbox against its own floor alone, at fractions of
# the floor's capacity.
FLOOR_COMPARED = ("flaskbox", "bare-pass")
FLOOR_FRACTIONS = (0.25, 0.5)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def openloop_binary() -> Path:
    """openloop.c compiled once per version of its source."""
    source = BENCH / "openloop.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = Path(tempfile.gettempdir()) / f"flaskbox-openloop-{digest}"
    if not binary.exists():
        built = binary.with_suffix(".tmp")
        subprocess.run(["cc", "-O2", "-Wall", "-o", str(built), str(source), "-lm"], check=True)
        built.rename(binary)
    return binary


def openloop(port: int, path: str, rate: float, seconds: float, warmup: float, seed: int) -> dict:
    out = subprocess.run([str(openloop_binary()), "-p", str(port), "-P", path, "-r", f"{rate:.1f}",
                          "-d", str(seconds), "-w", str(warmup), "-s", str(seed), "-c", "256"],
                         check=True, capture_output=True, text=True, timeout=seconds + warmup + 60)
    return json.loads(out.stdout)


def fixed_rate(contender: Contender, path: str, rate: float, seconds: float, warmup: float,
               seed: int) -> dict:
    """One open-loop run, with the CPU each of the container's process
    groups spent per answered request and the load average around it."""
    before = loadavg()
    used, result = cpu_groups(contender.container,
                              lambda: openloop(contender.port, path, rate, seconds, warmup, seed))
    # The CPU account covers the warm-up's requests too: divide by all of them.
    requests = max(round(rate * (seconds + warmup)), 1)
    result["cpu_us_per_request"] = {group: round(spent / requests * 1e6, 1) for group, spent in used.items()}
    result["cpu_us_per_request"]["client"] = round(result["client_cpu_s"] / requests * 1e6, 1)
    result["loadavg"] = [before, loadavg()]
    return result


def fixed_race(entrants: list[Contender], routes: dict[str, str], rounds: int, rates: dict[str, float],
               seconds: float) -> dict:
    """Every contender at a fixed open-loop rate on each route (`rates`),
    interleaved over rounds: the CPU a request costs each process group when
    all do the same work per second (the variants' figure with --rate), and
    the tail. Medians over the rounds, with each round's figures."""
    runs: dict = {c.name: {route: [] for route in routes} for c in entrants}
    try:
        for contender in entrants:
            log(f"starting {contender.name}")
            contender.start()
            openloop(contender.port, "/", 200, 1, 0.5, 1)  # warm up
        for rnd in range(1, rounds + 1):
            for contender in entrants:
                for route, path in routes.items():
                    got = fixed_rate(contender, path, rates[route], seconds, 2, rnd)
                    runs[contender.name][route].append(got)
                    tail = got["latency_ms"]
                    log(f"round {rnd} {contender.name:48} {route:9} p99 {tail['p99']} ms, p99.9 "
                        f"{tail['p99.9']} ms, max {tail['max']} ms, CPU µs/request "
                        f"{got['cpu_us_per_request']}, load {got['loadavg']}")
    finally:
        for contender in entrants:
            contender.stop()
    return {name: {route: {
        "p50_ms": statistics.median(r["latency_ms"]["p50"] or float("inf") for r in results),
        "p99_ms": statistics.median(r["latency_ms"]["p99"] or float("inf") for r in results),
        "p99.9_ms": statistics.median(r["latency_ms"]["p99.9"] or float("inf") for r in results),
        # A pause that holds a process (a collection, a recycle) shows in
        # the p99.9 and the worst, and only in some rounds.
        "tail_ms_by_round": [{q: r["latency_ms"][q] for q in ("p99", "p99.9", "max")} for r in results],
        "errors": sum(r["status_errors"] + r["connection_errors"] + r["unanswered"] for r in results),
        "cpu_us_per_request": {g: round(statistics.median(r["cpu_us_per_request"][g] for r in results), 1)
                               for g in results[0]["cpu_us_per_request"]},
        "server_cpu_us_by_round": [server_cpu(r) for r in results],
        "loadavg_by_round": [r["loadavg"] for r in results]}
        for route, results in routes_of.items()} for name, routes_of in runs.items()}


def saturation(entrants: list[Contender], routes: dict[str, str], rounds: int, seconds: float) -> dict:
    """wrk -t2 -c64 against every contender and route, interleaved: the
    capacities the rates are fractions of, and the throughput and p99 at
    saturation that the goals compare."""
    runs: dict = {c.name: {route: [] for route in routes} for c in entrants}
    for rnd in range(1, rounds + 1):
        for route, path in routes.items():
            for contender in entrants:
                before = loadavg()
                result = measure(contender.container, path, seconds)
                result["loadavg"] = [before, loadavg()]
                runs[contender.name][route].append(result)
                log(f"saturation round {rnd} {route:13} {contender.name:16} {result['rps']:8.0f} req/s "
                    f"p99 {result['p99_ms']:7.2f} ms errors {result['errors']} "
                    f"CPU µs/request {result['cpu_us_per_request']} load {result['loadavg']}")
    summary = {name: {route: {"rps": statistics.median(r["rps"] for r in results),
                              "p99_ms": statistics.median(r["p99_ms"] for r in results),
                              "rps_by_round": [round(r["rps"]) for r in results],
                              "p99_ms_by_round": [r["p99_ms"] for r in results],
                              "errors": sum(r["errors"] for r in results),
                              "cpu_us_per_request": {g: round(statistics.median(
                                  r["cpu_us_per_request"][g] for r in results), 1)
                                  for g in results[0]["cpu_us_per_request"]}}
                      for route, results in routes.items()} for name, routes in runs.items()}
    return {"runs": runs, "summary": summary}


def sweep(entrants: list[Contender], routes: dict[str, str], fractions: tuple[float, ...],
          capacity: dict[str, float], seconds: float, warmup: float, rounds: int = 1) -> dict:
    """Every contender at each fraction of the reference's capacity, on
    every route, `rounds` times over; within a route and rate the
    contenders take turns in a rotating order, with the same arrivals (the
    same seed). One run's tail is one draw of the rare stalls it measures:
    each figure is the median over the rounds, each round kept beside it."""
    drawn: dict = {c.name: {route: {} for route in routes} for c in entrants}
    turn = 0
    for rnd in range(1, rounds + 1):
        for fraction in fractions:
            for number, (route, path) in enumerate(routes.items()):
                rate = capacity[route] * fraction
                seed = 1000 * number + int(fraction * 100) + 100000 * (rnd - 1)
                turn += 1
                order = entrants[turn % len(entrants):] + entrants[:turn % len(entrants)]
                for contender in order:
                    got = fixed_rate(contender, path, rate, seconds, warmup, seed)
                    drawn[contender.name][route].setdefault(f"{round(fraction * 100)}%", []).append(got)
                    lat = got["latency_ms"]
                    log(f"round {rnd} {round(fraction * 100):3}% {route:13} {rate:7.0f}/s "
                        f"{contender.name:16} "
                        f"p50 {lat['p50']} p99 {lat['p99']} p99.9 {lat['p99.9']} max {lat['max']} ms, "
                        f"errors {got['status_errors'] + got['connection_errors'] + got['unanswered']}, "
                        f"lag p99 {got['dispatch_lag_ms']['p99']} ms, "
                        f"CPU µs/request {got['cpu_us_per_request']}, load {got['loadavg']}")
    return {name: {route: {load: merged(runs) for load, runs in loads.items()}
                   for route, loads in by_route.items()}
            for name, by_route in drawn.items()}


def median_or_none(values: list) -> float | None:
    """The median of the rounds' figures; None (a percentile that fell on
    failed requests) if any round's was."""
    return None if any(v is None for v in values) else statistics.median(values)


def merged(runs: list[dict]) -> dict:
    """The rounds of one contender, route and load as one run's figures
    (their medians), the rounds' own under "rounds"."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    return {**first,
            "latency_ms": {q: median_or_none([r["latency_ms"][q] for r in runs])
                           for q in first["latency_ms"]},
            "cpu_us_per_request": {g: round(statistics.median(r["cpu_us_per_request"][g] for r in runs), 1)
                                   for g in first["cpu_us_per_request"]},
            "status_errors": sum(r["status_errors"] for r in runs),
            "connection_errors": sum(r["connection_errors"] for r in runs),
            "unanswered": sum(r["unanswered"] for r in runs),
            "rounds": [{"latency_ms": r["latency_ms"], "cpu_us_per_request": r["cpu_us_per_request"],
                        "loadavg": r["loadavg"]} for r in runs]}


TAIL_GOAL = "p99 and p99.9 no worse than Granian's and tiangolo-config's (ms: flaskbox, granian, tiangolo)"


def server_cpu(result: dict) -> float:
    """CPU µs a request of everything but the client."""
    return round(sum(v for k, v in result["cpu_us_per_request"].items() if k != "client"), 1)


def goals(sat: dict, tails: dict) -> dict:
    """The issue's goals as measured in this run."""
    summary = sat["summary"]
    ours, granian, tiangolo = summary["flaskbox"], summary["granian"], summary["tiangolo-config"]
    out: dict = {}
    if "hello" in ours:
        out["hello >= 0.85x Granian"] = round(ours["hello"]["rps"] / granian["hello"]["rps"], 2)
        out["hello p99 at saturation <= tiangolo-config's (ms)"] = [ours["hello"]["p99_ms"],
                                                                     tiangolo["hello"]["p99_ms"]]
    if "wait 5 ms" in ours:
        out["5 ms route >= 1.0x Granian"] = round(ours["wait 5 ms"]["rps"] / granian["wait 5 ms"]["rps"], 2)
    tail = out[TAIL_GOAL] = {}
    floor = out["the CPU floor: throughput and server CPU µs a request (flaskbox, bare pass)"] = {}
    for route in ours:
        for load, got in tails["flaskbox"][route].items():
            tail[f"{route} {load}"] = {
                pct: [got["latency_ms"][pct], tails["granian"][route][load]["latency_ms"][pct],
                      tails["tiangolo-config"][route][load]["latency_ms"][pct]] for pct in ("p99", "p99.9")}
        floor[route] = {
            "saturation": [ours[route]["rps"], summary["bare-pass"][route]["rps"]],
            **{load: [server_cpu(tails[name][route][load]) for name in ("flaskbox", "bare-pass")]
               for load in tails["flaskbox"][route]}}
    return out


def floor_goals(sat: dict, tails: dict) -> dict:
    """Issue 42's goals as measured in this run: throughput at least 0.9x
    the floor's, and p99 and p99.9 at most 1.25x the floor's plus 0.5 ms,
    each with its figures (flaskbox, floor)."""
    summary = sat["summary"]
    ours, floor = summary["flaskbox"], summary["bare-pass"]
    out: dict = {"throughput >= 0.9x the floor": {}, "tail <= 1.25x the floor + 0.5 ms": {},
                 "server CPU µs a request (flaskbox, floor)": {}}
    for route in ours:
        out["throughput >= 0.9x the floor"][route] = [round(ours[route]["rps"] / floor[route]["rps"], 2),
                                                      round(ours[route]["rps"]), round(floor[route]["rps"])]
        for load, got in tails["flaskbox"][route].items():
            theirs = tails["bare-pass"][route][load]
            for pct in ("p99", "p99.9"):
                mine, limit = got["latency_ms"][pct], theirs["latency_ms"][pct]
                bound = round(limit * 1.25 + 0.5, 2) if limit is not None else None
                met = mine is not None and bound is not None and mine <= bound
                out["tail <= 1.25x the floor + 0.5 ms"][f"{route} {load} {pct}"] = [mine, limit, bound, met]
            out["server CPU µs a request (flaskbox, floor)"][f"{route} {load}"] = [server_cpu(got),
                                                                                   server_cpu(theirs)]
    if "flaskbox-before" in summary:  # --before: the earlier version, beside
        before = summary["flaskbox-before"]
        out["before: throughput / the floor's"] = {route: round(before[route]["rps"] / floor[route]["rps"], 2)
                                                    for route in before}
        out["before: p99 and p99.9, ms"] = {
            f"{route} {load} {pct}": got["latency_ms"][pct] for route in before
            for load, got in tails["flaskbox-before"][route].items() for pct in ("p99", "p99.9")}
    return out


def chart(tails: dict, capacity: dict[str, float], fractions: tuple[float, ...], path: Path,
          reference: str = "Granian's") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"flaskbox": "#2a7", "granian": "#d62", "tiangolo-config": "#36c", "bare-pass": "#999",
               "flaskbox-before": "#a6d"}
    routes = list(capacity)
    fig, axes = plt.subplots(1, len(routes), figsize=(4.2 * len(routes), 4.4), squeeze=False)
    axes = axes[0]
    for ax, route in zip(axes, routes, strict=True):
        finite = [got["latency_ms"][pct] for runs in tails.values() for got in runs[route].values()
                  for pct in ("p99", "p99.9") if got["latency_ms"][pct] is not None]
        top = max(finite, default=1.0) * 2
        for name, runs in tails.items():
            loads = list(runs[route])
            xs = [int(load.rstrip("%")) for load in loads]
            for pct, style in (("p99", "-"), ("p99.9", "--")):
                ys = [runs[route][load]["latency_ms"][pct] for load in loads]
                ax.plot(xs, [y if y is not None else float("nan") for y in ys], style, marker="o",
                        color=colours.get(name, "#000"), label=f"{name} {pct}")
                # A percentile that fell on failed requests: an x at the top.
                failed = [x for x, y in zip(xs, ys, strict=True) if y is None]
                ax.plot(failed, [top] * len(failed), "x", color=colours.get(name, "#000"), markersize=9)
        ax.set_title(f"{route} (100 % = {capacity[route]:.0f}/s)", fontsize=10)
        ax.set_xlabel(f"offered load, % of {reference} capacity")
        ax.set_yscale("log")
        ax.set_xticks([round(f * 100) for f in fractions])
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("latency, ms (log)")
    axes[-1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Latency at a fixed offered rate (open loop, Poisson arrivals, coordinated omission "
                 "corrected): p99 solid, p99.9 dashed; x at the top: the percentile fell on failed requests")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(entrants: list[Contender], routes: dict[str, str], fractions: tuple[float, ...], rounds: int,
        seconds: float, sweep_seconds: float, warmup: float, machine: dict, out: Path,
        reference: str = "granian", sweep_rounds: int = 1) -> int:
    """The saturation runs, then the sweep at `fractions` of the capacity of
    `reference` (Granian's for --latency, the floor's for --floor), written to
    latency.json/png or floor.json/png."""
    started = loadavg()
    try:
        for contender in entrants:
            log(f"starting {contender.name}: {contender.label}")
            contender.start()
            openloop(contender.port, "/", 200, 1, 0.5, 1)  # warm up: imports, caches, first forks
        sat = saturation(entrants, routes, rounds, seconds)
        capacity = {route: sat["summary"][reference][route]["rps"] for route in routes}
        log(f"{reference}'s capacity: {capacity}")
        tails = sweep(entrants, routes, fractions, capacity, sweep_seconds, warmup, sweep_rounds)
    finally:
        CONTAINERS.cleanup()
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine,
               "loadavg": [started, loadavg()],
               "settings": {"fractions": fractions, "routes": routes, "saturation_rounds": rounds,
                            "saturation_seconds": seconds, "sweep_seconds": sweep_seconds,
                            "sweep_rounds": sweep_rounds, "warmup_s": warmup,
                            "generator": "bench/openloop.c: Poisson arrivals, up to 256 keep-alive "
                                         "connections",
                            "contenders": {c.name: c.label for c in entrants}},
               "capacity": capacity, "saturation": sat, "tails": tails}
    floor = reference == "bare-pass"
    results["goals"] = floor_goals(sat, tails) if floor else goals(sat, tails)
    name = "floor" if floor else "latency"
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(tails, capacity, fractions, out / f"{name}.png", "the floor's" if floor else "Granian's")
    log(f"{name}: {out / f'{name}.json'}, {out / f'{name}.png'}")
    for name, value in results["goals"].items():
        log(f"goal {name}: {value}")
    return 0
