"""--pages --ballast MB: issue 61's memory goal. A large app's import
(MB of Python objects made before the fork: bench/app's BALLAST) served
by flaskbox's default pool and by gunicorn sync --preload, each under the
same closed loop of /heavy at 20 clients: the container's PSS (each shared
page divided among the processes sharing it) once idle and after the
load, beside the throughput the load had. Two rounds, the contenders'
order turning. Written to pages-memory.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pages
from harness import log
from servers import Contender

CLIENTS = 20
ROUNDS = 2


def pss_mb(contender: Contender) -> float:
    return round(contender.container.pss_kb() / 1024, 1)


def one(contender: Contender, megabytes: int, seconds: float) -> dict:
    contender.env = {**contender.env, "BENCH_BALLAST_MB": str(megabytes)}
    contender.start()
    try:
        pages.one_run(contender, "/", 1, 0.5, clients=8)  # the first requests of each worker
        idle = pss_mb(contender)
        got = pages.one_run(contender, "/heavy", seconds, pages.WARMUP["heavy"], clients=CLIENTS)
        return {"pss_idle_mb": idle, "pss_after_mb": pss_mb(contender), "rps": got["rps"],
                "p99_ms": got["p99_ms"], "container_cpu_us": got["container_cpu_us"]}
    finally:
        contender.stop()


def run(entries: list[Contender], megabytes: int, seconds: float, machine: dict, out: Path) -> int:
    runs: dict[str, list[dict]] = {c.name: [] for c in entries}
    for rnd in range(ROUNDS):
        for contender in pages.rotated(entries, rnd):
            got = one(contender, megabytes, seconds)
            runs[contender.name].append(got)
            log(f"round {rnd + 1} ballast {megabytes} MB {contender.name:24} PSS idle {got['pss_idle_mb']} "
                f"MB, after /heavy @{CLIENTS} {got['pss_after_mb']} MB at {got['rps']} req/s")
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "method": __doc__,
               "ballast_mb": megabytes, "seconds": seconds, "clients": CLIENTS,
               "contenders": {c.name: c.label for c in entries}, "runs": runs}
    (out / "pages-memory.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    log(f"pages memory: {out / 'pages-memory.json'}")
    return 0
