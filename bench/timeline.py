"""--timeline: where hello world's tail comes from at a low load (issue 42).

flaskbox with its defaults takes an open-loop schedule (openloop.c -T: each
request's arrival on the wall clock and its latency) for a while, and the
container's own events are laid beside it: the image's health checks (their
start and end, from `docker inspect`), and every uWSGI worker respawned
(recycling: its log line's time). For the requests slower than the run's
p99 (the slowest 1 %), it then asks each suspect a question the data can answer:

- an event (a health check, a respawn): do the slow requests arrive during
  one more often than requests in general? (how many did, against how
  many would by chance: tied when 3 or more did, and 3 times chance);
- something periodic with no log line (REQUEST_TIMEOUT's watchdog looks
  every 0.5 s, the access log is flushed every 1 s): do the slow requests'
  arrivals bunch at one phase of that period? (the Rayleigh statistic R of
  their phases: about 1/sqrt(n) when they do not, towards 1 when they do);
- a stall that holds a process (a collection, a lock): do the slow requests
  come in bursts, each within 2 ms of another, or alone, as scheduling and
  hand-offs of Python's lock between threads leave them?

Written to timeline.json and timeline.png; the benchmarks' history explains
them ("The tail's causes": git show aef2e86:docs/BENCHMARKS.md).
"""

from __future__ import annotations

import cmath
import json
import math
import re
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from harness import log
from latency import loadavg, openloop_binary
from servers import Contender

# The periods with no log line of their own: the watchdog's look
# (guards.watch_every at the default REQUEST_TIMEOUT) and the access log's
# flush (nginx.conf: flush=1s).
PERIODS = {"watchdog look (0.5 s)": 0.5, "access log flush (1 s)": 1.0}
# The periods scanned for any other rhythm (periodogram): its shortest and
# longest, in seconds.
SCAN = (0.05, 2.0)
# A slow request within this of another is part of a burst.
BURST_S = 0.002
# An event's window: from just before its start to a little after its end
# (a request that arrived then may wait for what the event held).
BEFORE_S, AFTER_S = 0.005, 0.050
RESPAWN = re.compile(r"respawned uwsgi worker", re.IGNORECASE)


def stamp(text: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, a zone) as Unix time."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    whole = datetime.fromisoformat(match.group(1) + (match.group(3).replace("Z", "+00:00")))
    return whole.timestamp() + float(match.group(2) or 0)


def events(contender: Contender) -> dict[str, list[tuple[float, float]]]:
    """(start, end) of the container's health checks and worker respawns."""
    health = contender.container.inspect()["State"].get("Health") or {}
    checks = [(stamp(entry["Start"]), stamp(entry["End"])) for entry in health.get("Log", [])]
    out = subprocess.run(["docker", "logs", "--timestamps", contender.container.name],
                         capture_output=True, text=True, check=False)
    respawns = []
    for line in (out.stdout + out.stderr).splitlines():
        when, _, text = line.partition(" ")
        if RESPAWN.search(text):
            respawns.append((stamp(when), stamp(when)))
    return {"health check": checks, "worker respawned": respawns}


def within(when: float, windows: list[tuple[float, float]]) -> bool:
    return any(start - BEFORE_S <= when <= end + AFTER_S for start, end in windows)


def rayleigh(times: list[float], period: float) -> float:
    """How much `times` bunch at one phase of `period` (0: evenly spread, 1: all at one)."""
    if not times:
        return 0.0
    return abs(sum(cmath.exp(2j * math.pi * (t % period) / period) for t in times)) / len(times)


def scanned_periods(span: float) -> list[float]:
    """SCAN's periods, finely enough that a phase cannot drift a quarter
    turn over a run of `span` seconds."""
    periods, period = [], SCAN[0]
    while period <= SCAN[1]:
        periods.append(period)
        period += period * period / (4 * span)
    return periods


def periodogram(times: list[float], span: float) -> list[list[float]]:
    """The periods at which `times` bunch most (local peaks of R, strongest
    first, at most 8, each [period, R]), scanned finely enough that a phase
    cannot drift a quarter turn over the run. A rhythm of period P also
    peaks at P/2, P/3...: the longest of a family is the rhythm."""
    scanned = [(period, rayleigh(times, period)) for period in scanned_periods(span)]
    peaks = [scanned[i] for i in range(1, len(scanned) - 1)
             if scanned[i][1] >= scanned[i - 1][1] and scanned[i][1] >= scanned[i + 1][1]]
    return [[round(p, 4), round(r, 3)] for p, r in sorted(peaks, key=lambda peak: -peak[1])[:8]]


def rhythm(peaks: list[list[float]], count: int, tried: int) -> float | None:
    """The period of the strongest rhythm: the longest of the peaks nearly
    as strong as the strongest (its P/2, P/3... peak as high), if chance
    would make so strong a peak in fewer than 1 % of runs, among all the
    `tried` periods (Rayleigh: a chance of exp(-n R^2) at each)."""
    if not peaks or count * peaks[0][1] ** 2 < math.log(100 * tried):
        return None
    return max(period for period, r in peaks if r >= 0.8 * peaks[0][1])


def analyse(timeline: list[tuple[float, int]], found: dict[str, list[tuple[float, float]]]) -> dict:
    answered = sorted(latency for _, latency in timeline if latency >= 0)
    p99 = answered[int(len(answered) * 0.99)]
    # The slowest 1 % (an unanswered request is slowest of all).
    ranked = sorted(timeline, key=lambda row: float("inf") if row[1] < 0 else row[1], reverse=True)
    slow = [when for when, _ in ranked[:max(len(timeline) // 100, 1)]]
    everyone = [when for when, _ in timeline]
    out: dict = {"requests": len(timeline), "p50_ms": answered[len(answered) // 2] / 1000,
                 "p99_ms": p99 / 1000, "p99.9_ms": answered[int(len(answered) * 0.999)] / 1000,
                 "slowest 1 %": len(slow), "events": {}, "periodic": {}}
    for name, windows in found.items():
        share_all = sum(within(t, windows) for t in everyone) / len(everyone)
        during = sum(within(t, windows) for t in slow)
        expected = share_all * len(slow)
        out["events"][name] = {"count": len(windows), "share of all requests": round(share_all, 4),
                               "slow requests during one": during, "expected by chance": round(expected, 1),
                               # Tied: several, and well beyond chance.
                               "tied": during >= 3 and during >= 3 * expected}
    for name, period in PERIODS.items():
        out["periodic"][name] = {"R of slow requests": round(rayleigh(slow, period), 3),
                                 "R expected by chance": round(1 / math.sqrt(max(len(slow), 1)), 3)}
    span = everyone[-1] - everyone[0]
    peaks = periodogram(slow, span)
    out["periodogram of slow requests: strongest [period s, R]"] = peaks
    out["their rhythm, s (None: none above chance)"] = rhythm(peaks, len(slow), len(scanned_periods(span)))
    slow.sort()
    bursty = sum(1 for i, t in enumerate(slow)
                 if (i and t - slow[i - 1] <= BURST_S) or (i + 1 < len(slow) and slow[i + 1] - t <= BURST_S))
    out["slow requests in bursts (within 2 ms of another)"] = round(bursty / max(len(slow), 1), 3)
    # The same share if slow requests came at random (a Poisson stream at
    # their rate): a neighbour within 2 ms on either side.
    out["by chance, in bursts"] = round(1 - math.exp(-2 * BURST_S * len(slow) / span), 3)
    out["rate"] = round(len(everyone) / span, 1)
    return out


def chart(runs: dict[str, tuple[list, dict]], path: Path) -> None:
    """One panel per run: each request at its arrival, and the events."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(runs), 1, figsize=(12, 3.2 * len(runs)), squeeze=False)
    for ax, (label, (timeline, found)) in zip(axes[:, 0], runs.items(), strict=True):
        t0 = timeline[0][0]
        kept = [(t - t0, lat / 1000) for t, lat in timeline if lat >= 0]
        ax.scatter([t for t, _ in kept], [lat for _, lat in kept], s=2, alpha=0.4, label="a request")
        for i, (start, end) in enumerate(found["health check"]):
            ax.axvspan(start - t0, end - t0 + 0.05, color="tab:red", alpha=0.3,
                       label="health check" if not i else None)
        for i, (start, _) in enumerate(found["worker respawned"]):
            ax.axvline(start - t0, color="tab:green", lw=1, label="worker respawned" if not i else None)
        ax.set_yscale("log")
        ax.set_xlim(0, timeline[-1][0] - t0)
        ax.set_ylabel("latency, ms")
        ax.set_title(label, fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds into the run (each request at its arrival)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def measure_one(contender: Contender, rate: float, seconds: float) -> tuple[list, dict, dict, list]:
    """(timeline, events, openloop's summary, load average before and after)."""
    contender.start()
    try:
        with tempfile.NamedTemporaryFile(suffix=".timeline") as file:
            before = loadavg()
            command = [str(openloop_binary()), "-p", str(contender.port), "-P", "/", "-r", f"{rate:.1f}",
                       "-d", str(seconds), "-w", "2", "-c", "256", "-T", file.name]
            done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 90)
            lines = Path(file.name).read_text().splitlines()
            timeline = [(float(a), int(b)) for a, b in (line.split() for line in lines)]
        return timeline, events(contender), json.loads(done.stdout), [before, loadavg()]
    finally:
        contender.stop()


# The runs, each a suspect changed: flaskbox as users run it (the image's
# health check on, its workers recycled after max-requests), without the
# health check (as the floor runs), without recycling, its watchdog's
# rhythm moved, and no threads to hand Python's lock between. Each: (the
# environment, whether the image's health check runs).
RUNS = {
    "defaults, with the image's health check": ({}, True),
    "defaults without the health check (as the floor runs)": ({}, False),
    "no recycling (UWSGI_MAX_REQUESTS=0), no health check": ({"UWSGI_MAX_REQUESTS": "0"}, False),
    "REQUEST_TIMEOUT=4: the watchdog looks every 0.2 s": ({"REQUEST_TIMEOUT": "4"}, True),
    "4 processes x 1 thread: no other request thread to hand the lock to": (
        {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "1"}, True),
}


def run(rate: float, seconds: float, out_dir: Path, machine: dict) -> int:
    results: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "rate": rate,
                     "seconds": seconds, "runs": {}}
    drawn = {}
    for label, (env, health_check) in RUNS.items():
        contender = Contender("flaskbox", label, [], env=env, health_check=health_check)
        timeline, found, summary, load = measure_one(contender, rate, seconds)
        results["runs"][label] = {
            "loadavg": load, "openloop": summary, "analysis": analyse(timeline, found),
            "events": {name: [[round(a, 3), round(b, 3)] for a, b in spans] for name, spans in found.items()}}
        drawn[label] = (timeline, found)
        log(f"timeline, {label}: {json.dumps(results['runs'][label]['analysis'], ensure_ascii=False)}")
    (out_dir / "timeline.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(drawn, out_dir / "timeline.png")
    log(f"timeline: {out_dir / 'timeline.json'}, {out_dir / 'timeline.png'}")
    return 0
