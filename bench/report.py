"""The report: the chart, the machine it ran on, and the full run's goals
as measured (docs/BENCHMARKS.md, "Against its floor")."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from harness import CONNECTIONS

from helpers import docker


def chart(summary: dict, image: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    routes = list(next(iter(summary.values())))
    fig, (rps_ax, p99_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(routes)
    for i, route in enumerate(routes):
        xs = [n + (i - (len(routes) - 1) / 2) * width for n in range(len(names))]
        rps_ax.bar(xs, [summary[name][route]["rps"] for name in names], width, label=route)
        p99_ax.bar(xs, [summary[name][route]["p99_ms"] for name in names], width, label=route)
    titles = ((rps_ax, "requests/s (higher is better)"), (p99_ax, "p99 latency, ms (lower is better)"))
    for ax, title in titles:
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_title(title)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    p99_ax.set_yscale("log")
    fig.suptitle(f"{CONNECTIONS} connections, medians; flaskbox cold start "
                 f"{image['cold_start_s']['median']:.2f} s, idle {image['idle_memory_mb']['rss']:.0f} MB RSS")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spread_bars(ax, spreads: list[dict | None], offset: float = 0.0, width: float = 0.8, **bar) -> None:
    """A bar a contender, in order, at its rounds' median, whiskers to their
    least and greatest: each spread {median, min, max}, or None to leave it out."""
    xs, ys, low, high = [], [], [], []
    for n, got in enumerate(spreads):
        if not got or got.get("median") is None:
            continue
        median = got["median"]
        xs.append(n + offset)
        ys.append(median)
        low.append(median - (got["min"] if got.get("min") is not None else median))
        high.append((got["max"] if got.get("max") is not None else median) - median)
    if xs:
        ax.bar(xs, ys, width, yerr=[low, high], capsize=2, **bar)


def name_axis(ax, title: str, names: list[str], log: bool = False, rotation: int = 25) -> None:
    """A panel's title, the contenders under it, and a grid (a log scale for p99s)."""
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(len(names)), names, rotation=rotation, ha="right", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if log:
        ax.set_yscale("log")


def machine() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    docker_version = docker("version", "-f", "{{.Server.Version}}", check=False).stdout.strip()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {"cpus": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": platform.release(),
            "docker": docker_version, "wrk": wrk_version.split("[")[0].strip()}


def goals(summary: dict, image: dict) -> dict:
    """The full run's targets, each as measured in this run."""
    hello = summary["flaskbox"]["hello"]

    def against(name: str) -> list:
        other = summary[name]["hello"]
        return [round(hello["rps"] / other["rps"], 2), round(hello["p99_ms"] / other["p99_ms"], 2),
                {"throughput by round": other["flaskbox_rps_ratio_by_round"]}]

    return {
        "throughput, p99 vs tiangolo-config: >= 1.25, <= 1": against("tiangolo-config"),
        "throughput, p99 vs granian: >= 1.0, <= 0.5": against("granian"),
        "throughput vs gunicorn-gevent: >= 1.8": against("gunicorn-gevent")[0],
        "p99_ms < 15 with 0 errors": [hello["p99_ms"], hello["errors"]],
        "cold_start_s < 1": image["cold_start_s"]["median"],
        "idle_stop_s < 1": image["idle_stop_s"]["median"],
        "idle_memory_mb < 100 (RSS, PSS)": [image["idle_memory_mb"]["rss"], image["idle_memory_mb"]["pss"]],
        "added_mb < 100": image["added_mb"],
    }
