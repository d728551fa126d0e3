"""The benchmark's other modes cannot rot: the traffic run's smoke drives
every shape of traffic against each contender, the latency run's measures
every contender at a fixed open-loop rate, the account's groups add up to
the machine, the pages run measures a page that computes, the overload
run counts good answers and timeouts, the tail run
splits a request's time, the apps run's figures add up, the interpreter
run times each Python. (A module of
their own beside test_bench.py: pytest-xdist keeps a module on one worker,
and the smoke runs together were the parallel phase's longest.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flaskbox.request.serve import CLIENTS_GONE
from helpers import REPO

pytestmark = pytest.mark.slow


def smoke(mode: str, out: Path) -> dict:
    """`bench.py --<mode> --smoke` on the suite's base; what it wrote to
    <mode>.json. (Each test takes `image` first, as test_bench.py's does:
    the bench's build then comes from the suite's layers.)"""
    base = os.environ.get("BASE_IMAGE", "ubuntu:24.04")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), f"--{mode}", "--smoke", "--out", str(out),
         "--base-image", base], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((out / f"{mode}.json").read_text())


def test_bench_traffic_smoke_run_measures_every_shape(tmp_path, image):
    results = smoke("traffic", tmp_path)["results"]
    assert set(results) == {"flaskbox", "granian", "gunicorn-gthread", "gunicorn-gevent"}
    for name, got in results.items():
        assert got["waiting"]["rps"] > 0 and len(got["waiting"]["rps_by_round"]) == 1, (name, got)
        assert got["streams"]["clients"] == 50 and got["downloads"]["clients"] == 6, (name, got)
    ours = results["flaskbox"]
    # flaskbox's own bars, which its tests hold as well: every download
    # whole, every stream complete, nothing refused.
    assert ours["downloads"]["whole"] == 6 and ours["downloads"]["others_failed"] == 0, ours
    assert ours["streams"]["streams_complete"] == 50 and ours["streams"]["ordinary_not_ok"] == 0, ours
    assert ours["waiting"]["errors"] == 0 and ours["waiting"]["flaskbox_rps_ratio"] == 1.0
    assert (tmp_path / "traffic.png").read_bytes().startswith(b"\x89PNG")


def test_bench_latency_smoke_run_measures_the_tail(tmp_path, image):
    results = smoke("latency", tmp_path)
    assert set(results["tails"]) == {"flaskbox", "tiangolo-config", "granian", "bare-pass"}
    for name, routes in results["tails"].items():
        for route, loads in routes.items():
            got = loads["50%"]
            # The rate asked for is half of Granian's measured capacity, and
            # requests were answered. A peer may fail some at that rate (the
            # best-known image's configuration overflows uWSGI's listen
            # queue: 502): a percentile that fell on failed requests has no
            # latency, and then the failures are counted.
            assert abs(got["rate"] - results["capacity"][route] / 2) <= 0.1, (name, route, got)
            failed = got["status_errors"] + got["unanswered"]
            assert got["answered"] > 0, (name, route, got)
            assert got["latency_ms"]["p99"] is not None or failed >= got["requests"] / 100, (name, route, got)
            assert got["loadavg"][0] >= 0 and got["cpu_us_per_request"]["client"] > 0, (name, route, got)
    # flaskbox itself answers every request at half of Granian's capacity.
    ours = results["tails"]["flaskbox"]["hello"]["50%"]
    assert ours["status_errors"] == ours["connection_errors"] == ours["unanswered"] == 0, ours
    assert "hello >= 0.85x Granian" in results["goals"]
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


def test_bench_account_smoke_run_adds_up_to_the_machine(tmp_path, image):
    results = smoke("account", tmp_path)
    summary = results["summary"]
    assert set(summary) == {"flaskbox", "bare-pass"}
    cpus = os.cpu_count()
    for name, routes in summary.items():
        got = routes["hello"]
        assert got["errors"] == 0 and got["rps"] > 0, (name, got)
        per = got["us_per_request"]
        # Every group is in the account, and together they are the machine:
        # its CPUs for the run's length, which wrk's count divides.
        assert abs(got["machine_us_per_request"] * got["rps"] / 1e6 / cpus - 1) < 0.2, (name, got)
        assert sum(per["nginx workers"]) > 0 and sum(per["app server workers"]) > 0, (name, per)
        assert sum(per["load generator (wrk)"]) > 0, (name, per)
        # One access line a request on stdout.
        written = got["log_bytes_per_request"]
        assert written["stdout"] > 40, got
        assert got["wire_bytes"]["answer body"] == len(b"Hello, World!"), got
    # And no warning on flaskbox's stderr: a saturated hello world is no
    # reason for one, nor are the requests wrk leaves in flight when it stops
    # (the floor's bare uWSGI logs a broken pipe for each of those). Those that
    # waited past GONE_AFTER in the queue (a busy machine: seen in CI under
    # -n 2) are skipped and counted, as nginx logs them 499: a line every
    # 10 s at most, which says what happened.
    hello = summary["flaskbox"]["hello"]
    others = [line for line in hello["stderr_said"] if CLIENTS_GONE.why not in line]
    assert not others and hello["log_bytes_per_request"]["stderr"] < 1, (others, summary["flaskbox"])
    # flaskbox's answer carries the request id and the hardening headers.
    assert (summary["flaskbox"]["hello"]["wire_bytes"]["answer headers"]
            > summary["bare-pass"]["hello"]["wire_bytes"]["answer headers"] + 100)
    assert (tmp_path / "account.png").read_bytes().startswith(b"\x89PNG")


def test_bench_pages_smoke_run_measures_a_page_that_computes(tmp_path, image):
    results = smoke("pages", tmp_path)
    summary = results["summary"]
    assert set(summary) == {"flaskbox", "nginx-gunicorn-sync"}
    for name, loads in summary.items():
        got = loads["heavy @4"]
        # The page answered, counted after the warm-up, with the CPU its
        # container spent on each answer: a scrypt hash and 300 rows are
        # milliseconds, not the microseconds of hello world.
        assert got["errors"] == 0 and got["rps"]["median"] > 0, (name, got)
        assert got["container_cpu_us"]["median"] > 5000, (name, got)
        assert got["machine_busy_us"]["median"] >= got["container_cpu_us"]["median"] * 0.8, (name, got)
        assert loads["heavy open 50%"]["p99_ms"]["median"] is not None, (name, loads)
    # The wait route ran for flaskbox's shapes alone; the goals compare it
    # with gunicorn sync.
    assert "wait 5 ms @4" in summary["flaskbox"] and "wait 5 ms @4" not in summary["nginx-gunicorn-sync"]
    assert results["goals"]["flaskbox"]["heavy @4"]["cpu"][1] == summary["nginx-gunicorn-sync"]["heavy @4"][
        "container_cpu_us"]["median"]
    assert (tmp_path / "pages.png").read_bytes().startswith(b"\x89PNG")


def test_bench_overload_smoke_run_counts_good_answers_and_timeouts(tmp_path, image):
    results = smoke("overload", tmp_path)
    summary = results["summary"]
    assert set(summary) == {"flaskbox", "nginx-gunicorn-sync"}
    for name in summary:
        # Answers counted in the window, with the container's CPU read
        # around it. (How many were good is the full run's to say, on a
        # quiet machine, beside its neighbours; here, the suite's other
        # tests run beside it, and a login may outlast the smoke's window.)
        run = results["runs"][name]["login"][0]
        assert sum(run["statuses"].values()) > 0 and run["cpu_ms_a_good_answer"] > 0, (name, run)
    assert results["runs"]["nginx-gunicorn-sync"]["login"][0]["statuses"].get("200")
    assert (tmp_path / "overload.png").read_bytes().startswith(b"\x89PNG")


def test_bench_tail_smoke_run_splits_each_requests_time(tmp_path, image):
    results = smoke("tail", tmp_path)
    runs = results["runs"]
    assert set(runs) == {"flaskbox", "flaskbox 4x1", "nginx-gunicorn-sync", "granian"}
    for name, (got,) in runs.items():
        # The handler's own stamp read from each answer: its parts add up
        # to the latency the client saw.
        whole = got["all"]
        assert got["rps"] > 0 and whole["in_app_cpu_ms"] > 1, (name, got)
        parts = whole["outside_app_ms"] + whole["in_app_waiting_ms"] + whole["in_app_cpu_ms"]
        assert abs(parts - whole["latency_ms"]) < 0.5, (name, whole)
        # A new container's first load, measured before: answers, the slowest no faster than the p99.
        (first,) = results["first_load"][name]
        assert first["rps"] > 0 and first["max_ms"] >= first["p99_ms"] > 0, (name, first)
    # Round by round over each peer: the one round's own ratio.
    mine, theirs = runs["flaskbox"][0], runs["nginx-gunicorn-sync"][0]
    ratios = results["paired"]["flaskbox"]["nginx-gunicorn-sync"]
    assert ratios["rps"]["median"] == round(mine["rps"] / theirs["rps"], 3), ratios
    assert set(results["paired"]["nginx-gunicorn-sync"]) == {"granian"}, results["paired"]  # not over itself


def test_bench_apps_smoke_run_adds_up(tmp_path, image):
    """A new container's first window and a warm one, each shape: the
    figures add up to the answers counted, each process that answered
    made its set-up, and Keystone's users went token, then its calls."""
    results = smoke("apps", tmp_path)
    assert set(results["runs"]) == {"flaskbox", "uwsgi-keystone"}
    for name, shapes in results["runs"].items():
        for shape, (got,) in shapes.items():
            assert got["start_s"] > 0 and got["calibration"]["token_rounds"] > 0, (name, shape, got)
            for when in ("first", "warm"):
                run = got[when]
                assert run["good"] == sum(path["good"] for path in run["by_path"].values()), (name, run)
                assert run["good_per_s"] == round(run["good"] / results["seconds"], 2), (name, shape, run)
                share = round(run["cpu_s"] / run["good"] * 1000, 2) if run["good"] else None
                assert run["cpu_ms_a_request"] == share and run["cpu_s"] > 0, (name, shape, run)
                assert all(took > 0.05 for took in run["setup_cpu_s"].values()), (name, shape, run)
            warm = got["warm"]
            assert warm["good"] > 0 and warm["rss_mb"] >= warm["pss_mb"] > 0, (name, shape, warm)
            if shape == "ckan":  # every page behind the set-up of the process that made it
                assert warm["processes"] >= 1 and set(warm["by_path"]) == {"/ckan/dataset"}, warm
            else:  # each user: its token, then the three calls, then again
                counts = [path["good"] for path in warm["by_path"].values()]
                assert set(warm["by_path"]) <= {"/ks/token", "/ks/project", "/ks/catalog", "/ks/validate"}
                assert max(counts) - min(counts) <= results["clients"], warm
    # DevStack's lazy uWSGI: at most its two workers, each with a set-up of its own.
    assert results["runs"]["uwsgi-keystone"]["ckan"][0]["warm"]["processes"] <= 2
    assert (tmp_path / "apps.png").read_bytes().startswith(b"\x89PNG")


def test_bench_interpreter_smoke_run_times_each_python(tmp_path, image):
    """The same function in the base's python3, around its shared
    libpython and in a worker: each timed (how they compare is
    test_interpreter.py's, measured alone, and BENCHMARKS.md's)."""
    report = smoke("interpreter", tmp_path)
    (base, found), = report["bases"].items()
    assert found["python"].startswith("Python 3."), found
    for name in ("python3", "shared_libpython", "worker", "python3_beside"):
        assert 1 < found[name] < 10_000, (name, found)
    assert found["shared_over_python3"] > 0 and found["worker_over_python3"] > 0, found
