"""--tail (issue 69): where the slowest percent of a page's requests waited.
/list (a short PBKDF2 check outside the lock, then 600 rows) from 20
clients, each sending its next request when its answer came, against
flaskbox, its fixed 4 x 1 shape, gunicorn sync and Granian. bench/app
stamps each answer with its handler's own time (X-Handler: seconds from
the app's first line to its last, the CPU its thread took meanwhile, the
worker's pid), so a request's time splits three ways:

- outside the app: the queues before a worker takes it (nginx's, the
  socket's, a worker's own) and the way back;
- in the app, not running: its thread ready but waiting for a CPU or for
  Python's lock (the handler's time less its CPU);
- in the app, running: its CPU.

Each is averaged over the requests at or past the run's p99, beside the
same over all requests, and the processes' shares of those slow requests
say whether they waited behind one slow process.

Two loads. A new container's first (FIRST_LOADS times, each contender
started afresh, no warm-up): what a start or a reload meets. Then many
short rounds, the contenders in turn: a shared host's speed drifts by a
third within minutes, so each contender's figures are set beside the
peers' in the same round, and the median of those ratios is the run's
(`paired`). Written to tail.json."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from pathlib import Path

from harness import log
from pages import rotated
from servers import Contender

CLIENTS, WARMUP = 20, 4.0
# Fresh starts of each contender whose first load is measured: how a burst
# spreads over new workers is a draw, so one start says little.
FIRST_LOADS = 3
PEERS = ("nginx-gunicorn-sync", "granian")


Answer = tuple[float, float, float, str]  # latency, handler seconds, handler CPU, pid


def client_run(port: int, seconds: float, warmup: float = WARMUP) -> tuple[list[Answer], int]:
    """(latency, handler seconds, handler CPU, pid) of each 200 answered in
    the window after `warmup`, and how many requests got anything else (a
    status, a connection closed: counted, and the client connects again)."""
    got: list = []
    failed = [0]
    begun = time.monotonic()
    start, end = begun + warmup, begun + warmup + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < end:
            sent = time.monotonic()
            try:
                conn.request("GET", "/list")
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                failed[0] += 1
                continue
            done = time.monotonic()
            stamp = (resp.getheader("X-Handler") or "").split()
            if resp.status == 200 and len(stamp) == 3 and start <= done <= end:
                got.append((done - sent, float(stamp[0]), float(stamp[1]), stamp[2]))
            elif resp.status != 200:
                failed[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + warmup + 60)
    return got, failed[0]


def split(answers: list) -> dict:
    """Milliseconds outside the app, waiting in it, computing in it: the
    mean over `answers`."""
    if not answers:
        return {}
    return {"latency_ms": round(statistics.mean(a[0] for a in answers) * 1000, 1),
            "outside_app_ms": round(statistics.mean(a[0] - a[1] for a in answers) * 1000, 1),
            "in_app_waiting_ms": round(statistics.mean(a[1] - a[2] for a in answers) * 1000, 1),
            "in_app_cpu_ms": round(statistics.mean(a[2] for a in answers) * 1000, 1)}


def figures(answers: list, failed: int, seconds: float) -> dict:
    ordered = sorted(answers, key=lambda a: a[0])
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)][0] if ordered else 0.0
    slow = [a for a in ordered if a[0] >= p99]
    pids: dict[str, int] = {}
    for answer in slow:
        pids[answer[3]] = pids.get(answer[3], 0) + 1
    return {"rps": round(len(answers) / seconds, 1), "p99_ms": round(p99 * 1000),
            "max_ms": round(ordered[-1][0] * 1000) if ordered else 0, "failed": failed,
            "all": split(answers), "slowest_percent": split(slow),
            "processes_all": len({a[3] for a in answers}),
            "slowest_from_one_process": round(max(pids.values(), default=0) / max(len(slow), 1), 2)}


def paired(runs: dict[str, list[dict]]) -> dict:
    """Each contender's requests a second, p99 and CPU a request over each
    peer's, round by round (the same minutes of the host): the median of
    those ratios and their range."""
    out: dict = {}
    for name, mine in runs.items():
        for peer in PEERS:
            if peer == name or peer not in runs:
                continue
            pairs = list(zip(mine, runs[peer], strict=True))
            ratios = {"rps": [a["rps"] / b["rps"] for a, b in pairs if b["rps"]],
                      "p99": [a["p99_ms"] / b["p99_ms"] for a, b in pairs if b["p99_ms"]],
                      "cpu": [a["all"]["in_app_cpu_ms"] / b["all"]["in_app_cpu_ms"] for a, b in pairs
                              if a["all"] and b["all"]]}
            out.setdefault(name, {})[peer] = {
                key: {"median": round(statistics.median(values), 3),
                      "range": [round(min(values), 3), round(max(values), 3)]}
                for key, values in ratios.items() if values}
    return out


def first_load(contender: Contender, seconds: float) -> dict:
    """The contender started afresh, then the clients at once: what its
    new workers do with their first load (the start's own GET / aside)."""
    contender.stop()
    contender.start()
    return figures(*client_run(contender.port, seconds, warmup=0.0), seconds)


def run(entries: list[Contender], rounds: int, seconds: float, machine: dict, out: Path,
        first_loads: int = FIRST_LOADS) -> int:
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "method": __doc__,
               "contenders": {c.name: c.label for c in entries},
               "first_load": {c.name: [] for c in entries}, "runs": {c.name: [] for c in entries}}

    def save() -> None:
        (out / "tail.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    try:
        for turn in range(first_loads):
            for contender in rotated(entries, turn):
                got = first_load(contender, seconds)
                results["first_load"][contender.name].append(got)
                log(f"first load {turn + 1} {contender.name:20} {got['rps']:6.1f} req/s "
                    f"p99 {got['p99_ms']} ms max {got['max_ms']} ms  slowest 1 %: {got['slowest_percent']}  "
                    f"from one process {got['slowest_from_one_process']}")
            save()
        for contender in entries:
            if contender.container is None:
                contender.start()
        for rnd in range(1, rounds + 1):
            for contender in rotated(entries, rnd):
                got = figures(*client_run(contender.port, seconds), seconds)
                results["runs"][contender.name].append(got)
                log(f"round {rnd} {contender.name:20} {got['rps']:6.1f} req/s p99 {got['p99_ms']} ms  "
                    f"failed {got['failed']}  "
                    f"slowest 1 %: {got['slowest_percent']}  from one process "
                    f"{got['slowest_from_one_process']}")
            results["paired"] = paired(results["runs"])
            save()
    finally:
        for contender in entries:
            contender.stop()
    for name, peers in results.get("paired", {}).items():
        for peer, ratios in peers.items():
            said = (f"{key} {ratio['median']} ({ratio['range'][0]}-{ratio['range'][1]})"
                    for key, ratio in ratios.items())
            log(f"tail: {name} over {peer}, round by round: {', '.join(said)}")
    log(f"tail: {out / 'tail.json'}")
    return 0
