"""--account (issue 53): where a saturated request's time goes, end to end,
for every process on the machine, flaskbox against its floor and the
servers a user would pick instead, in one run.

Each contender and route gets `wrk -t2 -c64` for --seconds, interleaved
round by round (at least 5 rounds: a 6 s round on 2 CPUs spreads by up to
half). Around each run the machine's own accounts are read:

- every process's user and system CPU (/proc/PID/stat), grouped by what it
  is: the container's nginx workers and master, its app server's workers
  and master, its PID 1 and helpers, and what ran and ended inside it
  meanwhile (its cgroup's total less its processes); the engine
  (containerd-shim, containerd, dockerd); the load generator (wrk, from
  its rusage); the kernel's threads (ksoftirqd, kworkers); the rest of the
  machine;
- the time the kernel spent in interrupts (softirq: the loopback TCP of
  both hops, charged to no process) and the machine's idle time;
- the bytes the container wrote to stdout and stderr (its json-file log's
  new lines, after nginx's 1 s flush), and the bytes one answer takes on
  the wire (one request as wrk sends it, read whole).

Every figure is per request. The groups add up to the machine's two CPUs
for the run's length, so 2 CPUs / (the sum a request) is the throughput:
the ratio of two contenders' sums is their throughput ratio, and the rows
say which group makes it. A ladder on hello world splits flaskbox's gap to
its floor into its steps: the floor over HTTP, as flaskbox's hop speaks
(the hop's price), and flaskbox without its WSGI wrapper (what nginx's
features and uWSGI's settings add; the wrapper is the last step). Written
to account.json and account.png."""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import time
from pathlib import Path

from harness import log
from runs import wrk
from servers import Contender

from containers import Container

TICK = os.sysconf("SC_CLK_TCK")
ROUTES = {"hello": "/", "wait 5 ms": "/wait", "realistic": "/realistic", "static 100 KB": "/static/blob.bin"}
ENGINE = {"containerd-shim": "engine: containerd-shim", "containerd-shim-runc-v2": "engine: containerd-shim",
          "containerd": "engine: containerd", "dockerd": "engine: dockerd"}
GROUPS = ("nginx workers", "nginx master", "app server workers", "app server master", "PID 1 and helpers",
          "ended in the container", "engine: containerd-shim", "engine: containerd", "engine: dockerd",
          "load generator (wrk)", "kernel threads", "interrupts (softirq)", "rest of the machine", "idle")


# --- what the machine says ---------------------------------------------------------------------------
def machine_ticks() -> dict[str, int]:
    """/proc/stat's first line: busy in tasks, interrupts, idle, steal."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return {"tasks": user + nice + system, "interrupts": irq + softirq, "idle": idle + iowait, "steal": steal}


def uptime_ticks() -> float:
    return float(Path("/proc/uptime").read_text().split()[0]) * TICK


def processes() -> dict[int, tuple[str, str, int, int, int, int]]:
    """Every process: (command name, cgroup path, parent, user ticks,
    system ticks, start in ticks since boot)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cgroup = Path(f"/proc/{entry.name}/cgroup").read_text()
        except OSError:
            continue  # ended meanwhile
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = (name, cgroup, int(rest[1]), int(rest[11]), int(rest[12]), int(rest[19]))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


HELPERS = ("tini", "bash", "sh", "sleep")


def inside_group(pid: int, table: dict, cgroup_id: str) -> str:
    """What a process in the container is: nginx's, its init's and
    flaskbox's helpers' (PID 1, `-m flaskbox ...`), or else the app
    server's, a worker when its parent is the app server's too (uWSGI's,
    gunicorn's and Granian's workers alike, whatever their names)."""
    def kind(pid: int) -> str:
        command = command_line(pid)
        name, _, parent = table[pid][:3]
        if command.startswith("nginx: worker"):
            return "nginx workers"
        if command.startswith("nginx: master"):
            return "nginx master"
        parent_inside = parent in table and cgroup_id in table[parent][1]
        if not parent_inside or name in HELPERS or "-m flaskbox" in command:
            return "PID 1 and helpers"
        return "app server"

    if (found := kind(pid)) != "app server":
        return found
    parent = table[pid][2]
    return "app server workers" if kind(parent) == "app server" else "app server master"


def outside_group(pid: int, name: str, parent: int) -> str:
    if name in ENGINE:
        return ENGINE[name]
    return "kernel threads" if parent == 2 or pid == 2 else "rest of the machine"


class Snapshot:
    """The machine's accounts at one moment."""

    def __init__(self, cgroup_id: str, container: Container):
        self.ticks = machine_ticks()
        self.uptime = uptime_ticks()
        self.table = processes()
        self.cgroup_total = container.cpu_total_seconds()
        self.rusage = os.times()
        self.cgroup_id = cgroup_id

    def cpu(self, pid: int) -> tuple[float, float]:
        _, _, _, user, system, _ = self.table[pid]
        return user / TICK, system / TICK


def account(before: Snapshot, after: Snapshot) -> dict[str, list[float]]:
    """Seconds of [user, system] each group spent between two snapshots."""
    spent = {group: [0.0, 0.0] for group in GROUPS}
    inside_total = 0.0
    for pid, (name, cgroup, parent, _, _, started) in after.table.items():
        if pid in before.table and before.table[pid][5] == started:
            start = before.cpu(pid)
        elif started >= before.uptime - 1:
            start = (0.0, 0.0)  # started during the run: all of its time is the run's
        else:
            continue  # one the first look missed: its time is the rest of the machine's
        user, system = (now - then for now, then in zip(after.cpu(pid), start, strict=True))
        if user + system <= 0:
            continue
        inside = after.cgroup_id in cgroup
        group = (inside_group(pid, after.table, after.cgroup_id) if inside
                 else outside_group(pid, name, parent))
        spent[group][0] += user
        spent[group][1] += system
        inside_total += (user + system) if inside else 0.0
    spent["ended in the container"][0] = max(0.0, after.cgroup_total - before.cgroup_total - inside_total)
    spent["load generator (wrk)"] = [after.rusage.children_user - before.rusage.children_user,
                                     after.rusage.children_system - before.rusage.children_system]
    ticks = {key: (after.ticks[key] - before.ticks[key]) / TICK for key in after.ticks}
    spent["interrupts (softirq)"][1] = ticks["interrupts"]
    spent["idle"][0] = ticks["idle"] + ticks["steal"]
    # What the tasks used that no group above holds: the machine's other work.
    counted = sum(sum(spent[group]) for group in GROUPS if group not in ("interrupts (softirq)", "idle"))
    spent["rest of the machine"][0] += max(0.0, ticks["tasks"] - counted - sum(spent["rest of the machine"]))
    return spent


# --- bytes ----------------------------------------------------------------------------------------------
def log_bytes(container: Container, offset: int) -> tuple[dict[str, int], list[str]]:
    """Bytes the container wrote to stdout and stderr since `offset` of its
    json-file log, and the first lines on stderr (what a warning said)."""
    path = Path(container.inspect()["LogPath"])
    written, said = {"stdout": 0, "stderr": 0}, []
    with path.open("rb") as log_file:
        log_file.seek(offset)
        for line in log_file:
            entry = json.loads(line)
            written[entry["stream"]] += len(entry["log"].encode())
            if entry["stream"] == "stderr" and len(said) < 5:
                said.append(entry["log"].rstrip("\n"))
        return written, said


def settled_log_offset(container: Container) -> int:
    """The log's size once it has stopped growing for longer than nginx's
    1 s flush (its buffered access log)."""
    path = Path(container.inspect()["LogPath"])
    size, since = path.stat().st_size, time.monotonic()
    while time.monotonic() - since < 1.3:
        time.sleep(0.1)
        now = path.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
    return size


def wire_bytes(port: int, path: str) -> dict[str, int]:
    """One request as wrk sends it, and its answer's bytes read whole."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        while len(body) < length:
            body += conn.recv(65536)
    return {"request": len(request), "answer headers": len(head) + 4, "answer body": length}


# --- the run --------------------------------------------------------------------------------------------
def measure(contender: Contender, path: str, seconds: float) -> dict:
    container = contender.container
    cgroup_id = container.inspect()["Id"]
    offset = settled_log_offset(container)
    before = Snapshot(cgroup_id, container)
    result = wrk(container.port, path, seconds)
    after = Snapshot(cgroup_id, container)
    settled_log_offset(container)
    written, result["stderr_said"] = log_bytes(container, offset)
    requests = max(result["requests"], 1)
    spent = account(before, after)
    result["us_per_request"] = {group: [round(value / requests * 1e6, 1) for value in both]
                                for group, both in spent.items()}
    result["log_bytes_per_request"] = {stream: round(count / requests, 1)
                                       for stream, count in written.items()}
    result["machine_us_per_request"] = round(sum(map(sum, spent.values())) / requests * 1e6, 1)
    return result


def run(entrants: list[Contender], routes: dict[str, str], rounds: int, seconds: float, machine: dict,
        out: Path, ladder: tuple[Contender, ...] = ()) -> int:
    """Every contender on every route, and the ladder's steps (flaskbox less
    a part, the floor plus one) on hello world alone, interleaved."""
    started = time.monotonic()
    plan = [(c, routes) for c in entrants] + [(c, {"hello": routes["hello"]}) for c in ladder]
    runs: dict = {c.name: {route: [] for route in paths} for c, paths in plan}
    wire: dict = {}
    try:
        for contender, paths in plan:
            log(f"starting {contender.name}: {contender.label}")
            contender.start()
            wrk(contender.port, "/", 1)
            wire[contender.name] = {route: wire_bytes(contender.port, path) for route, path in paths.items()}
        for rnd in range(1, rounds + 1):
            # The order turns each round, so no contender always follows the same one.
            turn = plan[rnd % len(plan):] + plan[:rnd % len(plan)]
            for contender, paths in turn:
                for route, path in paths.items():
                    got = measure(contender, path, seconds)
                    runs[contender.name][route].append(got)
                    per = {group: sum(both) for group, both in got["us_per_request"].items()}
                    log(f"round {rnd} {contender.name:22} {route:13} {got['rps']:8.0f} req/s  machine "
                        f"{got['machine_us_per_request']:6.0f} µs/req  nginx {per['nginx workers']:4.0f}  "
                        f"app {per['app server workers']:5.0f}  wrk {per['load generator (wrk)']:3.0f}  "
                        f"idle {per['idle']:4.0f}  errors {got['errors']}")
    finally:
        for contender, _ in plan:
            contender.stop()
    summary = summarise(runs, wire)
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine,
               "method": __doc__.split("\n\n", 1)[1], "rounds": rounds, "seconds": seconds,
               "contenders": {c.name: c.label for c, _ in plan}, "summary": summary, "runs": runs,
               "duration_s": round(time.monotonic() - started)}
    (out / "account.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(summary, out / "account.png")
    log(f"account: {out / 'account.json'}, {out / 'account.png'}")
    return 0


def summarise(runs: dict, wire: dict) -> dict:
    """Medians per contender and route, the spread of throughput, and the
    account's explanation of each contender's throughput against flaskbox's."""
    summary: dict = {}
    for name, routes in runs.items():
        summary[name] = {}
        for route, results in routes.items():
            rps = [r["rps"] for r in results]
            groups = {group: [round(statistics.median(r["us_per_request"][group][i] for r in results), 1)
                              for i in (0, 1)] for group in GROUPS}
            summary[name][route] = {
                "rps": round(statistics.median(rps)), "rps_by_round": [round(v) for v in rps],
                "errors": sum(r["errors"] for r in results),
                "us_per_request": groups,
                "machine_us_per_request": round(statistics.median(
                    r["machine_us_per_request"] for r in results), 1),
                "log_bytes_per_request": {stream: statistics.median(r["log_bytes_per_request"].get(stream, 0)
                                                                    for r in results)
                                          for stream in ("stdout", "stderr")},
                "stderr_said": next((r["stderr_said"] for r in results if r.get("stderr_said")), []),
                "wire_bytes": wire[name][route],
            }
    if "flaskbox" in summary:
        for routes in summary.values():
            for route, medians in routes.items():
                ours = summary["flaskbox"][route]  # every contender's routes are flaskbox's, or fewer
                medians["flaskbox_throughput_ratio"] = round(ours["rps"] / medians["rps"], 3)
                # What the account predicts: the ratio of the machine's time a
                # request, less the rest of the machine (other work, not the run's).
                def cost(m: dict) -> float:
                    return m["machine_us_per_request"] - sum(m["us_per_request"]["rest of the machine"])
                medians["flaskbox_ratio_the_account_gives"] = round(cost(medians) / cost(ours), 3)
    return summary


def chart(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = list(summary["flaskbox"])
    fig, axes = plt.subplots(1, len(routes), figsize=(4.2 * len(routes), 5), squeeze=False)
    # One colour a group, the same in every panel.
    colours = {group: plt.cm.tab20(i) for i, group in enumerate(GROUPS)}
    for ax, route in zip(axes[0], routes, strict=True):
        names = [name for name in summary if route in summary[name]]
        bottom = [0.0] * len(names)
        for group in GROUPS:
            values = [sum(summary[name][route]["us_per_request"][group]) for name in names]
            if not any(values):
                continue
            ax.bar(names, values, bottom=bottom, label=group, color=colours[group])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_title(f"{route}: machine µs a request")
        ax.tick_params(axis="x", rotation=25)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[group]) for group in GROUPS]
    fig.legend(handles, GROUPS, fontsize=7, loc="lower center", ncol=7)
    fig.suptitle("Where a saturated request's time goes (wrk -t2 -c64, medians): "
                 "2 CPUs / the bar = requests/s")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
