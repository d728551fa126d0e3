"""The traffic real apps get, against flaskbox's peers (bench/run.sh
--traffic, and part of the full run):

  waiting    a route that waits 5 ms (a database query) and renders a
             template, wrk with 64 connections, interleaved rounds;
  downloads  six clients reading a 24 MB response at 1 MB/s (curl
             --limit-rate), while another client asks for / every 0.2 s:
             how many downloads arrived whole, and how long the others
             waited meanwhile;
  streams    50 Server-Sent Event clients (an event a second for 10 s)
             beside 4 connections of ordinary requests to the 5 ms route:
             the events each client got, and the ordinary requests' p99.

Each contender runs in its own configuration's defaults; bench.py starts and
stops them. Results: traffic.json and traffic.png; docs/BENCHMARKS.md
("Waiting, slow clients, open streams") explains them.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import subprocess
import threading
import time

from load import Load, percentile
from sse import Crowd

DOWNLOAD_MB = 24
DOWNLOADERS = 6
STREAMS = 50
STREAM_SECONDS = 10
CPUS = len(os.sched_getaffinity(0))


def slow_download(port: int, megabytes: int, results: list) -> None:
    """curl at 1 MB/s: whether every byte arrived (the app's digest)."""
    started = time.monotonic()
    out = subprocess.run(["curl", "-sS", "--limit-rate", "1M", "--max-time", str(megabytes * 3 + 30),
                          "-D", "-", f"http://127.0.0.1:{port}/download?mb={megabytes}"],
                         capture_output=True, timeout=megabytes * 3 + 60)
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    sent = re.search(rb"(?im)^x-sha256:\s*([0-9a-f]{64})", head)
    whole = (out.returncode == 0 and sent is not None
             and sent.group(1).decode() == hashlib.sha256(body).hexdigest())
    results.append({"whole": whole, "bytes": len(body), "curl_exit": out.returncode,
                    "seconds": round(time.monotonic() - started, 1)})


def downloads(port: int, megabytes: int, clients: int) -> dict:
    """`clients` slow downloads at once, and the wait of a request to / every
    0.2 s while they run."""
    results: list[dict] = []
    threads = [threading.Thread(target=slow_download, args=(port, megabytes, results))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    waits, failed = [], 0
    while any(thread.is_alive() for thread in threads):
        before = time.monotonic()
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
                                f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
        waits.append(time.monotonic() - before)
        failed += probe.stdout != "200"
        time.sleep(0.2)  # the probe's pace
    for thread in threads:
        thread.join()
    return {"clients": clients, "megabytes": megabytes, "whole": sum(r["whole"] for r in results),
            "results": results, "others_max_ms": round(max(waits) * 1000, 1),
            "others_p50_ms": round(statistics.median(waits) * 1000, 1), "others_failed": failed}


def streams(port: int, clients: int, seconds: int, grace: int) -> dict:
    """`clients` event streams beside 4 connections of ordinary requests,
    each given `grace` seconds past its last event to have them all."""
    with Crowd(port, f"/events?count={seconds}&every=1", clients, seconds + grace) as crowd, \
            Load(port, path="/wait", connections=4, seconds=seconds) as load:
        pass
    latencies = [o.latency for o in load.outcomes if o.status == 200]
    return {"clients": clients, "seconds": seconds,
            "streams_complete": sum(count == seconds for count in crowd.counts),
            "events_min": min(crowd.counts) if crowd.counts else 0,
            "event_delay_p99_ms": round(percentile(crowd.delays, 99) * 1000, 1) if crowd.delays else None,
            "ordinary_ok": len(latencies), "ordinary_not_ok": len(load.outcomes) - len(latencies),
            "ordinary_p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None}


def measure(entrants, rounds: int, seconds: float, load, smoke: bool, log) -> dict:
    """The three shapes against every (started) contender. `load(container,
    path, seconds)` is bench.py's wrk run with the CPU each process group
    spent per request, from which the route's CPU-bound ceiling follows."""
    # A smoke run's streams are short and its grace long: it checks that
    # every stream arrives whole, on a CI machine that may be loaded.
    megabytes, stream_seconds, grace = (4, 4, 6) if smoke else (DOWNLOAD_MB, STREAM_SECONDS, 2)
    waiting: dict[str, list] = {c.name: [] for c in entrants}
    for rnd in range(1, rounds + 1):
        for contender in entrants:
            result = load(contender.container, "/wait", seconds)
            waiting[contender.name].append(result)
            log(f"waiting, round {rnd}: {contender.name:16} {result['rps']:8.0f} req/s "
                f"p99 {result['p99_ms']:7.2f} ms errors {result['errors']}")
    out: dict = {}
    for contender in entrants:
        runs = waiting[contender.name]
        # The server's own CPU per request (everything but wrk): with every
        # CPU busy on nothing else, no server could do more than this.
        server_us = statistics.median(sum(v for k, v in r["cpu_us_per_request"].items() if k != "client")
                                      for r in runs)
        out[contender.name] = {
            "waiting": {"rps": statistics.median(r["rps"] for r in runs),
                        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                        "errors": sum(r["errors"] for r in runs),
                        "rps_by_round": [round(r["rps"]) for r in runs],
                        "server_cpu_us_per_request": round(server_us, 1),
                        "cpu_bound_ceiling_rps": round(CPUS * 1e6 / server_us) if server_us else None},
            "downloads": downloads(contender.port, megabytes, DOWNLOADERS),
            "streams": streams(contender.port, STREAMS, stream_seconds, grace),
        }
        fetched, streamed = out[contender.name]["downloads"], out[contender.name]["streams"]
        log(f"{contender.name:16} downloads whole {fetched['whole']}/{DOWNLOADERS}, others waited up to "
            f"{fetched['others_max_ms']} ms; streams complete {streamed['streams_complete']}/{STREAMS}, "
            f"ordinary p99 {streamed['ordinary_p99_ms']} ms")
    base = out["flaskbox"]["waiting"]
    for name, got in out.items():
        got["waiting"]["flaskbox_rps_ratio"] = round(base["rps"] / got["waiting"]["rps"], 2)
        got["waiting"]["flaskbox_ratio_by_round"] = [
            round(ours["rps"] / theirs["rps"], 2)
            for ours, theirs in zip(waiting["flaskbox"], waiting[name], strict=True)]
    return out


def chart(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    panels = [
        ("5 ms route: requests/s", [results[n]["waiting"]["rps"] for n in names], False),
        (f"{DOWNLOADERS} clients at 1 MB/s: downloads whole",
         [results[n]["downloads"]["whole"] for n in names], False),
        ("meanwhile, another request's worst wait, ms",
         [results[n]["downloads"]["others_max_ms"] for n in names], True),
        (f"{STREAMS} open streams: ordinary p99, ms",
         [results[n]["streams"]["ordinary_p99_ms"] or 0 for n in names], True),
    ]
    for ax, (title, values, log_scale) in zip(axes, panels, strict=True):
        ax.bar(range(len(names)), values, color=["#2a7" if n == "flaskbox" else "#888" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if log_scale:
            ax.set_yscale("log")
    fig.suptitle("Traffic that waits: each server with its own defaults, 2 CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
