"""--overload (issue 69): work outside Python's lock, on a shared host, past
what the CPUs can serve; and a search whose handler waits for engine
threads of its own, against the engines' deadline.

- /login (bench/app: Django's PBKDF2 check, 0.27 s of CPU in OpenSSL,
  outside the lock) from 40 clients at once, each sending its next request
  when its answer came, every server given a 3 s deadline (flaskbox's
  REQUEST_TIMEOUT, gunicorn's --timeout; Granian has none), beside each
  kind of neighbour a shared host has: two busy loops on the host, and a
  container of its own that keeps one CPU busy. What counts is what
  arrived within the counted window: good answers a second (200s), the
  refusals (503) and the timeouts (504, or no answer), the tail of the
  good answers and of all, and the container's CPU for each good answer.
- /search (four engine threads a search, waited for up to 2 s) from 20
  clients, no neighbour: searches a second, their tail, and how many came
  back with an engine past its deadline (the answer says so).
- /stalling (issue 79: a 10 ms login outside the lock, one in 30 of each
  process waiting 2 s on a row lock) from 24 clients, no neighbour: a wait
  outside that computes nothing, which a pool must not take for its CPUs
  being full (docs/production.md, "Adaptive threads").

Each load runs every contender in turn, the order turning each round;
every figure is the median of the rounds, with their spread. Written to
overload.json and overload.png; docs/BENCHMARKS.md explains them."""

from __future__ import annotations

import http.client
import json
import re
import statistics
import threading
import time
from pathlib import Path

from harness import CONTAINERS, CONTENDERS_TAG, log
from pages import rotated
from report import name_axis, spread_bars
from servers import Contender, gunicorn_workers

from helpers import Neighbours

DEADLINE = 3
LOGIN_CLIENTS, SEARCH_CLIENTS, STALLING_CLIENTS = 40, 20, 24
WARMUP = 3.0
LATE = re.compile(rb"(\d+) engines late")
NEIGHBOURS = ("two busy loops", "a busy container")


def entrants(cpus: float | None = None) -> list[Contender]:
    """flaskbox's default, gunicorn sync as the apps ship it, Granian; each
    held to `cpus` (a CPU quota, --cpus), gunicorn's workers sized by it."""
    workers = str(gunicorn_workers(cpus))
    quota = ("--cpus", f"{cpus:g}") if cpus else ()
    return [
        Contender("flaskbox", "flaskbox, its defaults, REQUEST_TIMEOUT=3", [],
                  env={"REQUEST_TIMEOUT": str(DEADLINE)}, docker_args=quota),
        Contender("nginx-gunicorn-sync",
                  f"bare nginx -> gunicorn sync --preload, {workers} workers, --timeout 3",
                  ["/bench/contenders/bare/run.sh"],
                  env={"BARE_PROTOCOL": "gunicorn", "BARE_GUNICORN_CLASS": "sync", "BARE_PRELOAD": "1",
                       "BARE_PROCESSES": workers, "BARE_THREADS": "1", "BARE_TIMEOUT": str(DEADLINE)},
                  docker_args=quota),
        Contender("granian", "Granian, 2 WSGI workers (no deadline of its own)",
                  ["granian", "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                   "--port", "{PORT}", "--working-dir", "/app", "app:app"], docker_args=quota),
    ]


def neighbour(kind: str | None) -> Neighbours:
    """What else keeps the host's CPUs busy during a run."""
    if kind == "a busy container":
        return Neighbours(0, CONTAINERS, processes=1, image=CONTENDERS_TAG,
                          docker_args=("--no-healthcheck", "--cpus", "1"))
    return Neighbours(2 if kind == "two busy loops" else 0)


def clients(port: int, path: str, count: int, seconds: float) -> tuple[list[tuple], float, float, list]:
    """`count` keep-alive clients for WARMUP + `seconds`, started: the
    answers that arrive in the counted window, (status or error, seconds,
    engines late), filled in as they come; the window's bounds; the threads."""
    answers: list[tuple] = []
    begun = time.monotonic()
    start, end = begun + WARMUP, begun + WARMUP + seconds

    def client() -> None:
        conn = None
        while time.monotonic() < end:
            sent = time.monotonic()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", path)
                resp = conn.getresponse()
                body, status = resp.read(), resp.status
            except (OSError, http.client.HTTPException) as exc:
                body, status, conn = b"", type(exc).__name__, None
            done = time.monotonic()
            if start <= done <= end:
                late = LATE.search(body)
                answers.append((status, done - sent, int(late.group(1)) if late else 0))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return answers, start, end, threads


def percentile(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[max(0, int(len(ordered) * share) - 1)] * 1000) if ordered else None


def one_run(contender: Contender, path: str, count: int, seconds: float) -> dict:
    """One load against one contender: its figures, the container's CPU read around the window."""
    container = contender.container
    answers, start, end, threads = clients(contender.port, path, count, seconds)
    time.sleep(max(0.0, start - time.monotonic()))
    cpu_before = container.cpu_total_seconds()
    time.sleep(max(0.0, end - time.monotonic()))
    cpu = container.cpu_total_seconds() - cpu_before
    for thread in threads:
        thread.join(90)
    good = [seconds_ for status, seconds_, _ in answers if status == 200]
    statuses: dict[str, int] = {}
    for status, _, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"good_per_s": round(len(good) / seconds, 2), "statuses": statuses,
            "timeouts": sum(n for status, n in statuses.items() if status not in ("200", "503")),
            "p50_good_ms": percentile(good, 0.5), "p99_good_ms": percentile(good, 0.99),
            "p99_all_ms": percentile([s for _, s, _ in answers], 0.99),
            "cpu_ms_a_good_answer": round(cpu / max(len(good), 1) * 1000, 1),
            "late_searches": sum(1 for _, _, late in answers if late)}


LOADS = {f"login beside {kind}": ("/login", LOGIN_CLIENTS, kind) for kind in NEIGHBOURS}
LOADS["search"] = ("/search", SEARCH_CLIENTS, None)
LOADS["login with stalls"] = ("/stalling", STALLING_CLIENTS, None)
FIGURES = ("good_per_s", "timeouts", "p50_good_ms", "p99_good_ms", "p99_all_ms", "cpu_ms_a_good_answer",
           "late_searches")


def run(entries: list[Contender], rounds: int, seconds: float, machine: dict, out: Path,
        loads: dict = LOADS) -> int:
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "method": __doc__,
               "rounds": rounds, "seconds": seconds, "contenders": {c.name: c.label for c in entries},
               "runs": {c.name: {} for c in entries}}
    try:
        for contender in entries:
            contender.start()
        turn = 0
        for rnd in range(1, rounds + 1):
            for label, (path, count, kind) in loads.items():
                turn += 1
                with neighbour(kind):
                    for contender in rotated(entries, turn):
                        got = one_run(contender, path, count, seconds)
                        results["runs"][contender.name].setdefault(label, []).append(got)
                        log(f"round {rnd} {label:28} {contender.name:20} {got['good_per_s']:7.2f} good/s  "
                            f"{got['statuses']}  p99 good {got['p99_good_ms']} all {got['p99_all_ms']} ms  "
                            f"CPU {got['cpu_ms_a_good_answer']} ms  late {got['late_searches']}")
            results["summary"] = summarise(results["runs"])
            (out / "overload.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    finally:
        for contender in entries:
            contender.stop()
    chart(results["summary"], out / "overload.png")
    log(f"overload: {out / 'overload.json'}, {out / 'overload.png'}")
    return 0


def summarise(runs: dict) -> dict:
    """contender -> load -> figure -> the median of the rounds, their least and greatest."""
    def spread(values: list) -> dict:
        known = [v for v in values if v is not None]
        return ({"median": statistics.median(known), "min": min(known), "max": max(known)} if known
                else {"median": None, "min": None, "max": None})

    return {name: {label: {figure: spread([r[figure] for r in got]) for figure in FIGURES}
                   for label, got in by_load.items()} for name, by_load in runs.items()}


def chart(summary: dict, path: Path) -> None:
    """Good answers a second, timeouts, and the good answers' p99, per load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    labels = list(dict.fromkeys(label for by_load in summary.values() for label in by_load))
    figures = (("good_per_s", "good answers a second"), ("timeouts", "504s and no answer, a run"),
               ("p99_good_ms", "p99 of the good answers, ms"))
    fig, axes = plt.subplots(len(figures), len(labels), figsize=(5 * len(labels), 3.2 * len(figures)),
                             squeeze=False)
    for column, label in enumerate(labels):
        for row, (figure, title) in enumerate(figures):
            ax = axes[row][column]
            spread_bars(ax, [summary[name].get(label, {}).get(figure) for name in names])
            name_axis(ax, f"{label}: {title}", names, rotation=20)
    fig.suptitle("Overload (issue 69): medians of the rounds, whiskers their least and greatest")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
