"""--pages (issue 61): pages that compute, against the servers their apps
ship with, and flaskbox's pool in the shapes that could be its default.

Three routes of bench/app shaped like real pages: /heavy (a scrypt password
check, then 300 rows of a Jinja table: some 40 ms of CPU, as Airflow's DAG
list behind basic auth), /mixed (a 3 ms wait, then 160 rows: some 12 ms of
Python, as a search page) and /list (a short PBKDF2 check outside the lock,
then 600 rows: 30 to 60 ms, issue 69's). Each contender and route gets three loads:

- a closed loop of 20 clients and one of 64 (openloop.c -C: each client
  sends its next request when its answer came), counted after a warm-up:
  a pool that runs every admitted request at once answers nothing until
  all of them are done, and a run started cold would count that ramp;
- an open loop (Poisson arrivals) at half the capacity of the better of
  gunicorn sync and Granian, as 64 clients measured it in the run's first
  round: the tail at a load with room to spare.

flaskbox's candidate shapes also get the 5 ms wait route (/wait) at 20 and
64 clients, the route the threaded default was chosen for. Around each
counted window the container's CPU (its cgroup: nginx and the app server,
whatever ended meanwhile) and the machine's busy time (/proc/stat: every
task and interrupt, the client's too) are read, each divided by the
requests answered in the window; after each run the container is left to
finish what the client abandoned before the next one starts. At least 5
rounds, each with every load (a run cut short keeps whole rounds), the
contenders' order turning at each load; every figure is the median of the
rounds, with their spread. Written to pages.json and pages.png;
docs/BENCHMARKS.md explains them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

import latency
from account import TICK, machine_ticks
from harness import log
from report import name_axis, spread_bars
from servers import Contender, bare_pass, contenders, nginx_gunicorn, nginx_gunicorn_sync

from containers import Container

ROUTES = {"heavy": "/heavy", "mixed": "/mixed", "list": "/list"}
WAIT_ROUTE = {"wait 5 ms": "/wait"}
CLIENTS = (20, 64)
OPEN_FRACTION = 0.5
# Seconds each closed loop runs before it counts (openloop counts every
# answer after it, whenever sent): 64 requests of /heavy run at once in
# 4 x 16 threads take some 1.3 s to come back together, and the default's
# ADAPTIVE_THREADS, which starts again from 16 threads after two seconds
# without a request, takes one to two seconds to reach 1 or to come back,
# and the requests it let in meanwhile as long to end.
WARMUP = {"heavy": 4.0, "mixed": 4.0, "list": 4.0, "wait 5 ms": 4.0}
OPEN_WARMUP = 0.7
# Fixed shapes on 2 CPUs (processes x threads, ADAPTIVE_THREADS=0) beside the
# default, which adapts, and the default's shape with Python's switch
# interval raised (the app sets it).
SHAPES = {"4x16": (4, 16), "4x4": (4, 4), "2x4": (2, 4), "4x1": (4, 1), "5x1": (5, 1)}
SWITCH_INTERVAL = "0.02"
PEERS = ("nginx-gunicorn-sync", "granian")  # the goals' references
QUIET_CPU = 0.05  # of one CPU: the container has finished what it was left


def entrants(default: tuple[int, int]) -> list[Contender]:
    """flaskbox's default (named flaskbox), each fixed shape, the
    switch-interval variant, then the servers the apps ship with and the
    floor."""
    label = (f"flaskbox, its default: {default[0]} processes x up to {default[1]} threads, as many at once "
             "as keep each busy (ADAPTIVE_THREADS)")
    out = [Contender("flaskbox", label, [])]
    for shape, (processes, threads) in SHAPES.items():
        label = f"flaskbox, {processes} processes x {threads} threads, fixed"
        out.append(Contender(f"flaskbox {shape}", label, [],
                             env={"UWSGI_PROCESSES": str(processes), "UWSGI_THREADS": str(threads),
                                  "ADAPTIVE_THREADS": "0"}))
    out.append(Contender("flaskbox 4x16 switch 20 ms",
                         "flaskbox, 4 x 16 fixed, sys.setswitchinterval(0.02) in the app", [],
                         env={"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "16", "ADAPTIVE_THREADS": "0",
                              "BENCH_SWITCH_INTERVAL": SWITCH_INTERVAL}))
    by_name = {c.name: c for c in contenders(*default)}
    return [*out, nginx_gunicorn_sync(), nginx_gunicorn(), by_name["granian"], bare_pass(*default)]


def only(entries: list[Contender], shapes: list[str]) -> list[Contender]:
    """--only SHAPE (a key of SHAPES, or "switch"): flaskbox's default and
    those of its shapes, beside every peer and the floor."""
    kept = {"flaskbox", *(f"flaskbox {shape}" for shape in shapes)}
    if "switch" in shapes:
        kept.add("flaskbox 4x16 switch 20 ms")
    unknown = set(shapes) - set(SHAPES) - {"switch"}
    if unknown:
        raise SystemExit(f"bench.py: --only takes {', '.join([*SHAPES, 'switch'])} with --pages, "
                         f"not {', '.join(sorted(unknown))}")
    return [c for c in entries if c.name in kept or not c.name.startswith("flaskbox")]


# --- one run ---------------------------------------------------------------------------------------------
def busy_ticks() -> int:
    """The machine's busy time so far, in clock ticks: every task and interrupt."""
    ticks = machine_ticks()
    return ticks["tasks"] + ticks["interrupts"]


def settle(container: Container, limit: float = 20.0) -> None:
    """Waits until the container has finished the requests the client left
    (their CPU would be the next run's), at most `limit` seconds."""
    deadline, last = time.monotonic() + limit, container.cpu_total_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = container.cpu_total_seconds()
        if now - last < QUIET_CPU * 0.2:
            return
        last = now


def one_run(contender: Contender, path: str, seconds: float, warmup: float, *, clients: int = 0,
            rate: float = 0.0, seed: int = 1) -> dict:
    """openloop.c against `path`: a closed loop of `clients`, or an open
    loop at `rate`; the container's and the machine's CPU read around the
    counted window."""
    load = ["-C", str(clients)] if clients else ["-r", f"{rate:.1f}", "-s", str(seed), "-c", "256"]
    command = [str(latency.openloop_binary()), "-p", str(contender.port), "-P", path, "-d", str(seconds),
               "-w", str(warmup), *load]
    container = contender.container
    client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    time.sleep(warmup)
    cpu_before, busy_before = container.cpu_total_seconds(), busy_ticks()
    time.sleep(max(0.0, started + warmup + seconds - time.monotonic()))
    cpu_after, busy_after = container.cpu_total_seconds(), busy_ticks()
    out, err = client.communicate(timeout=seconds + warmup + 60)
    if client.returncode != 0:
        raise RuntimeError(f"openloop failed: {err}")
    settle(container)
    return record(json.loads(out), cpu_after - cpu_before, (busy_after - busy_before) / TICK)


def record(got: dict, container_s: float, busy_s: float) -> dict:
    """One run's figures from openloop's answer and the CPU seconds of its
    counted window."""
    answered = got["answered"] - got["status_errors"]
    per = max(answered, 1)
    return {"rps": round(answered / got["seconds"], 1), "p50_ms": got["latency_ms"]["p50"],
            "p99_ms": got["latency_ms"]["p99"],
            "errors": got["status_errors"] + got["connection_errors"] + got["unanswered"],
            "in_flight_at_end": got.get("in_flight_at_end", 0),
            "container_cpu_us": round(container_s / per * 1e6, 1),
            "machine_busy_us": round(busy_s / per * 1e6, 1),
            # CPUs the rest of the machine kept busy meanwhile (the client,
            # the kernel's loopback, and whatever else ran): a few hundredths
            # on a quiet machine, so a higher figure marks a round shared.
            "others_cpus": round((busy_s - container_s) / got["seconds"], 2)}


# --- the run ---------------------------------------------------------------------------------------------
def loads(routes: dict[str, str], clients: tuple[int, ...]) -> dict[str, tuple[str, str, int]]:
    """label -> (route, path, clients) for the closed loops."""
    return {f"{route} @{n}": (route, path, n) for route, path in routes.items() for n in clients}


def rotated(items: list, turn: int) -> list:
    return items[turn % len(items):] + items[:turn % len(items)]


def check_interval(contender: Contender) -> None:
    """The switch-interval variant's workers run with it (the app set it)."""
    wanted = contender.env.get("BENCH_SWITCH_INTERVAL")
    if wanted and float(contender.container.request("/interval").text) != float(wanted):
        contender.container.fail(f"{contender.name}: the workers' switch interval is not {wanted}")


def run(entries: list[Contender], rounds: int, seconds: float, machine: dict, out: Path,
        routes: dict[str, str] = ROUTES, wait_route: dict[str, str] = WAIT_ROUTE,
        clients: tuple[int, ...] = CLIENTS) -> int:
    """Round by round: the closed loops, then the open loop at half of the
    peers' capacity (as the first round measured it); pages.json, saved
    after each round, and pages.png."""
    started = time.monotonic()
    closed = loads(routes, clients)
    waits = loads(wait_route, clients)
    candidates = [c for c in entries if c.name.startswith("flaskbox")]
    runs: dict = {c.name: {} for c in entries}
    rates: dict[str, float] = {}
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "method": __doc__,
               "loadavg": [latency.loadavg()], "loadavg_by_round": [],
               "rounds": rounds, "seconds": seconds, "warmup_s": WARMUP, "open_fraction": OPEN_FRACTION,
               "contenders": {c.name: c.label for c in entries}, "runs": runs, "rates": rates}

    def save() -> None:  # after each round: a run cut short keeps what it measured
        results["summary"] = summarise(runs)
        results["goals"] = goals(results["summary"], [c.name for c in candidates], list(routes), clients[0])
        results["duration_s"] = round(time.monotonic() - started)
        (out / "pages.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    try:
        for contender in entries:
            log(f"starting {contender.name}: {contender.label}")
            contender.start()
            check_interval(contender)
            one_run(contender, "/", 1, 0.5, clients=8)  # warm up: imports, caches, first forks
        turn = 0
        plan = [(label, spec, entries) for label, spec in closed.items()]
        plan += [(label, spec, candidates) for label, spec in waits.items()]
        for rnd in range(1, rounds + 1):
            for label, (route, path, n), who in plan:
                turn += 1
                for contender in rotated(who, turn):
                    got = one_run(contender, path, seconds, WARMUP[route], clients=n)
                    runs[contender.name].setdefault(label, []).append(got)
                    log_run(rnd, contender.name, label, got)
            if not rates:
                rates.update({route: round(capacity(runs, f"{route} @{clients[-1]}") * OPEN_FRACTION, 1)
                              for route in routes})
                log(f"open loop at {OPEN_FRACTION:.0%} of the peers' capacity: {rates}")
            for number, (route, path) in enumerate(routes.items()):
                turn += 1
                label = f"{route} open {OPEN_FRACTION:.0%}"
                for contender in rotated(entries, turn):
                    got = one_run(contender, path, seconds, OPEN_WARMUP, rate=rates[route],
                                  seed=1000 * number + rnd)
                    runs[contender.name].setdefault(label, []).append(got)
                    log_run(rnd, contender.name, label, got)
            results["loadavg_by_round"].append(latency.loadavg())
            save()
    finally:
        for contender in entries:
            contender.stop()
    results["loadavg"].append(latency.loadavg())  # a run the machine shared is worth little
    save()
    chart(results["summary"], out / "pages.png")
    log(f"pages: {out / 'pages.json'}, {out / 'pages.png'}")
    for shape, verdicts in results["goals"].items():
        log(f"goals {shape}: {verdicts}")
    return 0


def capacity(runs: dict, label: str) -> float:
    """The better of the peers' requests/s at `label` (the median of the
    rounds), or every contender's best where no peer ran (a smoke run)."""
    names = [peer for peer in PEERS if peer in runs] or list(runs)
    return max(statistics.median(r["rps"] for r in runs[name][label]) for name in names)


def log_run(rnd: int, name: str, label: str, got: dict) -> None:
    log(f"round {rnd} {label:16} {name:28} {got['rps']:8.1f} req/s  "
        f"p50 {got['p50_ms']} p99 {got['p99_ms']} ms  "
        f"container {got['container_cpu_us']:8.0f} µs/req  machine {got['machine_busy_us']:8.0f}  "
        f"errors {got['errors']}  left {got['in_flight_at_end']}")


# --- the figures -----------------------------------------------------------------------------------------
FIGURES = ("rps", "p50_ms", "p99_ms", "container_cpu_us", "machine_busy_us", "others_cpus")


def spread(values: list) -> dict:
    """The median of the rounds, their least and greatest, and each round's
    (None: a percentile that fell on a failed request, worse than any)."""
    known = [v for v in values if v is not None]
    if len(known) < len(values) and len(known) <= len(values) / 2:
        return {"median": None, "min": min(known, default=None), "max": None, "by_round": values}
    ordered = sorted(known) + [float("inf")] * (len(values) - len(known))
    middle = statistics.median(ordered)
    return {"median": round(middle, 1) if middle != float("inf") else None, "min": round(min(known), 1),
            "max": round(max(known), 1) if len(known) == len(values) else None, "by_round": values}


def summarise(runs: dict) -> dict:
    """contender -> load -> figure -> its spread over the rounds, and the
    errors summed."""
    return {name: {label: {**{figure: spread([r[figure] for r in got]) for figure in FIGURES},
                           "errors": sum(r["errors"] for r in got)}
                   for label, got in by_load.items()}
            for name, by_load in runs.items()}


def goals(summary: dict, candidates: list[str], routes: list[str], clients: int) -> dict:
    """Issue 61's goals at `clients` clients on each route, for each
    candidate: container CPU a request <= gunicorn sync's; p99 <= 1.1 x the
    better of gunicorn sync's and Granian's; throughput >= both. Each as
    [ours, the bound, met]; a figure not measured is None."""
    def median(name: str, label: str, figure: str):
        return summary.get(name, {}).get(label, {}).get(figure, {}).get("median")

    out: dict = {}
    for name in candidates:
        verdicts = out[name] = {}
        for route in routes:
            label = f"{route} @{clients}"
            peers = [median(peer, label, "p99_ms") for peer in PEERS]
            rps = [median(peer, label, "rps") for peer in PEERS]
            bounds = {"cpu": median(PEERS[0], label, "container_cpu_us"),
                      "p99": round(1.1 * min(peers), 1) if None not in peers else None,
                      "rps": max(rps) if None not in rps else None}
            ours = {"cpu": median(name, label, "container_cpu_us"), "p99": median(name, label, "p99_ms"),
                    "rps": median(name, label, "rps")}
            verdicts[label] = {}
            for figure, bound in bounds.items():
                mine = ours[figure]
                met = (None if mine is None or bound is None
                       else mine >= bound if figure == "rps" else mine <= bound)
                verdicts[label][figure] = [mine, bound, met]
    return out


def chart(summary: dict, path: Path) -> None:
    """requests/s, p99 and the container's CPU a request, per route (one
    column each) and load (a bar each), the rounds' spread as whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    labels = list(dict.fromkeys(label for by_load in summary.values() for label in by_load))
    routes = list(dict.fromkeys(label.split(" @")[0].split(" open")[0] for label in labels))
    figures = (("rps", "requests/s"), ("p99_ms", "p99, ms (log)"),
               ("container_cpu_us", "container CPU µs a request"))
    fig, axes = plt.subplots(len(figures), len(routes), figsize=(6 * len(routes), 3.6 * len(figures)),
                             squeeze=False)
    for column, route in enumerate(routes):
        mine = [label for label in labels if label.startswith(f"{route} ")]
        width = 0.8 / max(len(mine), 1)
        for row, (figure, title) in enumerate(figures):
            ax = axes[row][column]
            for i, label in enumerate(mine):
                spreads = [summary[name].get(label, {}).get(figure) for name in names]
                spread_bars(ax, spreads, (i - (len(mine) - 1) / 2) * width, width, label=label)
            name_axis(ax, f"{route}: {title}", names, log=figure == "p99_ms", rotation=30)
            ax.legend(fontsize=7)
    fig.suptitle("Pages that compute (issue 61): medians of the rounds, whiskers their least and greatest")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
