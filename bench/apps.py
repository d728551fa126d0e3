"""--apps (issue 79): pages shaped like two large Flask/WSGI apps, against
the servers those apps run on, and flaskbox as it is.

    bench/run.sh --apps                      3 rounds of 20 s windows
    bench/run.sh --apps --rounds 2 --seconds 10
    bench/run.sh --apps --flaskbox-env UWSGI_PROCESSES=2 --flaskbox-env UWSGI_PROCESSES=4,UWSGI_THREADS=1
                                             flaskbox's defaults beside those shapes (a contender each)

The two shapes (bench/app: keystone_like.py, ckan_like.py):

- keystone: each user issues a token (POST /ks/token: a PBKDF2 password
  check, some 0.2 s of CPU outside Python's lock), then makes three cheap
  calls with it (/ks/project, /ks/catalog, /ks/validate: a few ms of Python
  each), and again; the cheap calls need the policy engine, which each
  process builds on its first (some 1.5 s of Python).
- ckan: each user reads dataset pages (/ckan/dataset/N: queries of a
  SQLite file, a validation schema, a large template: some 30-60 ms);
  each process first builds its web assets (some 3 s of Python).

The contenders: flaskbox with the image's defaults (whatever they are),
flaskbox with each --flaskbox-env; gunicorn sync behind nginx with
--preload and 5 workers, and with 2 workers and no preload; uWSGI behind
nginx as DevStack runs Keystone (2 processes x 1 thread, lazy-apps,
thunder-lock, the uwsgi protocol) and as CKAN's docs run it (one worker,
no threads, over HTTP). Each is bench/contenders/bare's where not
flaskbox.

Each round, for each shape, each contender in turn (the order turning):
a NEW container, started afresh with no warm-up, meets the 20 users at
once (closed loop: each sends its next request when its answer came) and
its first `seconds` are counted (`first`: what a start, a deploy or a
scale-out meets, the set-ups included); then, in the same container, a
warm-up and another `seconds` (`warm`), after which its memory (PSS and
RSS of its processes) is read; then it is removed. Counted in each
window: good answers (200) a second, by path too; p50, p99 and the slowest
of the good answers; the rest by status or error; the container's CPU
(its cgroup, around the window) for each good answer; and from each
answer's X-Setup, the worker processes that answered and the CPU each
spent on its set-up. Every figure is the median of the rounds, with their
least and greatest. The shapes' CPU counts (a token's PBKDF2 rounds, the
set-ups' passes) are measured once a run and are the same for every
contender (calibration()). Written to apps.json and apps.png; the table is
printed. The host's other work shows in the figures: each round's load
average is kept beside them."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from pathlib import Path

import latency
from harness import CONTAINERS, log
from pages import rotated, settle, spread
from report import name_axis, spread_bars
from servers import Contender

CLIENTS, WARMUP = 20, 3.0
PASSWORD = "correct horse battery staple"
SHAPES = ("keystone", "ckan")
KEYSTONE_CALLS = ("/ks/project", "/ks/catalog", "/ks/validate")
DATASETS = 3000  # ckan_like.DATASETS: the pages the users read
BARE = ["/bench/contenders/bare/run.sh"]


def entrants(default: tuple[int, int], overrides: list[dict[str, str]]) -> list[Contender]:
    """flaskbox's defaults, flaskbox with each override, then the servers
    the two apps document."""
    said = f"{default[0]} processes x {default[1]} threads here"
    out = [Contender("flaskbox", f"flaskbox, its defaults ({said})", [])]
    for env in overrides:
        said = " ".join(f"{name}={value}" for name, value in env.items())
        out.append(Contender(f"flaskbox {said}", f"flaskbox, {said}", [], env=dict(env)))
    sync = {"BARE_PROTOCOL": "gunicorn", "BARE_GUNICORN_CLASS": "sync", "BARE_THREADS": "1"}
    return [*out,
            Contender("gunicorn-sync-preload-5", "nginx -> gunicorn sync --preload, 5 workers", BARE,
                      env={**sync, "BARE_PRELOAD": "1", "BARE_PROCESSES": "5"}),
            Contender("gunicorn-sync-2", "nginx -> gunicorn sync, 2 workers, no --preload", BARE,
                      env={**sync, "BARE_PRELOAD": "0", "BARE_PROCESSES": "2"}),
            Contender("uwsgi-keystone", "nginx -> uWSGI as DevStack runs Keystone: 2 processes x 1 thread, "
                      "lazy-apps, thunder-lock, uwsgi protocol", BARE,
                      env={"BARE_PROTOCOL": "uwsgi", "BARE_PROCESSES": "2", "BARE_THREADS": "1",
                           "BARE_LAZY_APPS": "1", "BARE_THUNDER_LOCK": "1"}),
            Contender("uwsgi-ckan", "nginx -> uWSGI as CKAN's docs run it: 1 worker, no threads, HTTP", BARE,
                      env={"BARE_PROTOCOL": "http", "BARE_PROCESSES": "1", "BARE_THREADS": "1"})]


def overrides(given: list[str]) -> list[dict[str, str]]:
    """--flaskbox-env's values (NAME=VALUE, several joined by commas): an
    environment each."""
    out = []
    for one in given:
        pairs = [pair.strip() for pair in one.split(",") if pair.strip()]
        if not pairs or any("=" not in pair for pair in pairs):
            raise SystemExit(f"bench.py: --flaskbox-env takes NAME=VALUE[,NAME=VALUE], not {one!r}")
        out.append(dict(pair.split("=", 1) for pair in pairs))
    return out


# The shapes' counts (bench/app/per_process.py), measured once a run in the
# contenders' image, the median of PROBES imports, and given to every
# contender alike. Measured by each container at its import, one run on a
# busy host (2026-12-02) drew 338k to 630k token rounds, so that flaskbox
# did 1.6 x DevStack's uWSGI's work a token and looked 0.64 x as fast.
COUNTS = {"TOKEN_ROUNDS": "keystone_like", "POLICY_PASSES": "keystone_like", "ASSETS_PASSES": "ckan_like"}
PROBES = 3


def calibration(image: str, env: dict[str, str]) -> dict[str, str]:
    """BENCH_<count> for every contender of the run (`env`: BENCH_SETUP_SCALE, if set)."""
    script = ("import json, ckan_like, keystone_like; print(json.dumps({"
              + ", ".join(f"{name!r}: {module}.{name}" for name, module in COUNTS.items()) + "}))")
    probes = []
    for _ in range(PROBES):
        done = CONTAINERS.run_once("python3", "-c", script, image=image, env=env, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"apps: the shapes' calibration failed: {done.stderr.strip()[-2000:]}")
        probes.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {f"BENCH_{name}": str(int(statistics.median(probe[name] for probe in probes))) for name in COUNTS}


# --- the users -------------------------------------------------------------------------------------------
class Users:
    """CLIENTS users on keep-alive connections for `warmup` + `seconds`,
    started at once: each answer that arrives in the counted window, as
    (path, status or error, seconds, X-Setup)."""

    def __init__(self, port: int, shape: str, seconds: float, warmup: float):
        self.port, self.shape, self.answers = port, shape, []
        begun = time.monotonic()
        self.start, self.end = begun + warmup, begun + warmup + seconds
        self.threads = [threading.Thread(target=self.user, args=(number,), daemon=True)
                        for number in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def user(self, number: int) -> None:
        conn, token, step = None, None, 0
        while time.monotonic() < self.end:
            method, path, body, headers = self.next_request(number, step, token)
            sent = time.monotonic()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status, setup = resp.status, resp.getheader("X-Setup")
            except (OSError, http.client.HTTPException) as exc:
                conn, status, setup, resp = None, type(exc).__name__, None, None
            done = time.monotonic()
            if self.start <= done <= self.end:
                self.answers.append((path.rsplit("/", 1)[0] if self.shape == "ckan" else path, status,
                                     done - sent, setup))
            if self.shape == "keystone":  # token, then its three calls; a refused token is asked again
                if step == 0:
                    token = resp.getheader("X-Subject-Token") if status == 200 else None
                    step = 1 if token else 0
                else:
                    step = (step + 1) % (len(KEYSTONE_CALLS) + 1)
            else:
                step += 1

    def next_request(self, number: int, step: int, token: str | None) -> tuple:
        if self.shape == "ckan":  # each user its own walk through the datasets
            return "GET", f"/ckan/dataset/{(number * 7919 + step * 31) % DATASETS}", None, {}
        if step == 0:
            body = json.dumps({"user": f"user{number}", "password": PASSWORD})
            return "POST", "/ks/token", body, {"Content-Type": "application/json"}
        return "GET", KEYSTONE_CALLS[step - 1], None, {"X-Auth-Token": token, "X-Subject-Token": token}

    def join(self) -> None:
        for thread in self.threads:
            thread.join(180)


def ms(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[max(0, int(len(ordered) * share) - 1)] * 1000, 1) if ordered else None


def window(contender: Contender, shape: str, seconds: float, warmup: float) -> dict:
    """One counted window against the running contender: its figures, the
    container's CPU read around it."""
    container = contender.container
    users = Users(contender.port, shape, seconds, warmup)
    time.sleep(max(0.0, users.start - time.monotonic()))
    cpu_before = container.cpu_total_seconds()
    time.sleep(max(0.0, users.end - time.monotonic()))
    cpu = round(container.cpu_total_seconds() - cpu_before, 3)
    users.join()
    good = [a for a in users.answers if a[1] == 200]
    others: dict[str, int] = {}
    for _, status, _, _ in users.answers:
        if status != 200:
            others[str(status)] = others.get(str(status), 0) + 1
    setups: dict[str, float] = {}
    for *_, setup in good:
        if setup:
            pid, took = setup.split()
            setups[pid] = float(took)
    by_path: dict[str, list[float]] = {}
    for path, _, took, _ in good:
        by_path.setdefault(path, []).append(took)
    latencies = [a[2] for a in good]
    return {"good": len(good), "good_per_s": round(len(good) / seconds, 2), "not_good": others,
            "p50_ms": ms(latencies, 0.5), "p99_ms": ms(latencies, 0.99),
            "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
            "by_path": {path: {"good": len(got), "p50_ms": ms(got, 0.5), "p99_ms": ms(got, 0.99)}
                        for path, got in sorted(by_path.items())},
            "cpu_s": cpu,
            # None with no good answer: the CPU is in cpu_s, and an answer's share of it is not known.
            "cpu_ms_a_request": round(cpu / len(good) * 1000, 2) if good else None,
            "processes": len(setups), "setup_cpu_s": dict(sorted(setups.items()))}


def one(contender: Contender, shape: str, seconds: float, warmup: float) -> dict:
    """A new container's first window, then a warm one, then its memory."""
    began = time.monotonic()
    contender.start()
    try:
        started_s = round(time.monotonic() - began, 2)
        first = window(contender, shape, seconds, 0.0)
        settle(contender.container)
        warm = window(contender, shape, seconds, warmup)
        warm["pss_mb"] = round(contender.container.pss_kb() / 1024, 1)
        warm["rss_mb"] = round(contender.container.rss_kb() / 1024, 1)
        counted = contender.container.request("/apps/calibration").json()  # the counts it ran with
        return {"start_s": started_s, "first": first, "warm": warm, "calibration": counted}
    finally:
        contender.stop()


# --- the run ---------------------------------------------------------------------------------------------
def run(entries: list[Contender], rounds: int, seconds: float, machine: dict, out: Path,
        warmup: float = WARMUP) -> int:
    started = time.monotonic()
    scale = {k: v for k, v in entries[0].env.items() if k == "BENCH_SETUP_SCALE"}
    counts = calibration(entries[0].image, scale)
    log(f"apps: every contender's counts: {counts}")
    for contender in entries:
        contender.env = {**contender.env, **counts}
    runs: dict = {c.name: {shape: [] for shape in SHAPES} for c in entries}
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine, "method": __doc__,
               "rounds": rounds, "seconds": seconds, "warmup_s": warmup, "clients": CLIENTS, "counts": counts,
               "contenders": {c.name: c.label for c in entries}, "loadavg_by_round": [], "runs": runs}

    def save() -> None:  # after each round: a run cut short keeps what it measured
        results["summary"] = summarise(runs)
        results["duration_s"] = round(time.monotonic() - started)
        (out / "apps.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    turn = 0
    try:
        for rnd in range(1, rounds + 1):
            for shape in SHAPES:
                turn += 1
                for contender in rotated(entries, turn):
                    got = one(contender, shape, seconds, warmup)
                    runs[contender.name][shape].append(got)
                    for when in ("first", "warm"):
                        log_window(rnd, shape, contender.name, when, got[when])
            results["loadavg_by_round"].append(latency.loadavg())
            save()
    finally:
        for contender in entries:
            contender.stop()
    chart(results["summary"], out / "apps.png")
    print(table(results["summary"]), flush=True)
    log(f"apps: {out / 'apps.json'}, {out / 'apps.png'}")
    return 0


def log_window(rnd: int, shape: str, name: str, when: str, got: dict) -> None:
    log(f"round {rnd} {shape:8} {name:28} {when:5} {got['good_per_s']:7.2f} good/s  p50 {got['p50_ms']} "
        f"p99 {got['p99_ms']} max {got['max_ms']} ms  CPU {got['cpu_ms_a_request']} ms/req  "
        f"{got['processes']} processes, set-ups {list(got['setup_cpu_s'].values())} s  "
        f"not good {got['not_good']}" + (f"  PSS {got['pss_mb']} MB" if "pss_mb" in got else ""))


# --- the figures -----------------------------------------------------------------------------------------
FIGURES = ("good_per_s", "p50_ms", "p99_ms", "max_ms", "cpu_ms_a_request", "processes")
MEMORY = ("pss_mb", "rss_mb")


def summarise(runs: dict) -> dict:
    """contender -> shape -> first/warm -> figure -> its spread over the
    rounds (the median, the least, the greatest, each round's), the
    answers not good summed."""
    out: dict = {}
    for name, by_shape in runs.items():
        for shape, got in by_shape.items():
            if not got:
                continue
            mine = out.setdefault(name, {})[shape] = {"start_s": spread([g["start_s"] for g in got])}
            for when in ("first", "warm"):
                figures = FIGURES + (MEMORY if when == "warm" else ())
                mine[when] = {figure: spread([g[when][figure] for g in got]) for figure in figures}
                mine[when]["not_good"] = sum(sum(g[when]["not_good"].values()) for g in got)
    return out


COLUMNS = (("warm", "good_per_s", "good/s"), ("warm", "p50_ms", "p50 ms"), ("warm", "p99_ms", "p99 ms"),
           ("warm", "cpu_ms_a_request", "CPU ms"), ("warm", "pss_mb", "PSS MB"), ("warm", "not_good", "bad"),
           ("first", "good_per_s", "good/s"), ("first", "p99_ms", "p99 ms"), ("first", "max_ms", "max ms"),
           ("first", "cpu_ms_a_request", "CPU ms"), ("first", "not_good", "bad"))


def table(summary: dict) -> str:
    """The medians, a row each shape and contender: warm, then a new
    container's first window (CPU ms: the container's a good answer; bad:
    answers not 200, summed over the rounds)."""
    def cell(got: dict, figure: str) -> str:
        value = got.get("not_good") if figure == "not_good" else got.get(figure, {}).get("median")
        return f"{'-' if value is None else value:>9}"

    head = f"{'':40}{'warm':<54}| a new container's first {CLIENTS} users"
    labels = f"{'shape':10}{'contender':30}" + "".join(f"{label:>9}" for _, _, label in COLUMNS)
    lines = [head, labels, "-" * len(labels)]
    for shape in SHAPES:
        for name, by_shape in summary.items():
            if shape in by_shape:
                cells = "".join(cell(by_shape[shape][when], figure) for when, figure, _ in COLUMNS)
                lines.append(f"{shape:10}{name[:29]:30}{cells}")
    return "\n".join(lines)


def chart(summary: dict, path: Path) -> None:
    """Good answers a second, p99, CPU a request and memory, a column a
    shape, the first window and the warm one side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    figures = (("good_per_s", "good answers a second"), ("p99_ms", "p99 of the good answers, ms (log)"),
               ("cpu_ms_a_request", "container CPU ms a good answer"), ("pss_mb", "PSS after the load, MB"))
    fig, axes = plt.subplots(len(figures), len(SHAPES), figsize=(6.5 * len(SHAPES), 3.4 * len(figures)),
                             squeeze=False)
    for column, shape in enumerate(SHAPES):
        for row, (figure, title) in enumerate(figures):
            ax = axes[row][column]
            for offset, when in (((0.0, "warm"),) if figure in MEMORY else ((-0.2, "first"), (0.2, "warm"))):
                spreads = [summary[name].get(shape, {}).get(when, {}).get(figure) for name in names]
                spread_bars(ax, spreads, offset, 0.4,
                            label="a new container's first window" if when == "first" else "warm")
            name_axis(ax, f"{shape}: {title}", names, log=figure == "p99_ms")
            ax.legend(fontsize=7)
    fig.suptitle(f"Large apps' shapes (issue 79), {CLIENTS} users: medians of the rounds, "
                 "whiskers their least and greatest")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
