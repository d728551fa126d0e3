"""`bench.py --pages` (issue 61) summarises what it measured without a
container: a run's figures from openloop's answer and the CPU read around
its window, the rounds' medians with their spread, the open loop's rate
from the peers' capacity, and the issue's goals as verdicts."""

import sys

from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))
import pages  # noqa: E402


def answer(answered: int, status_errors: int = 0, p99=120.0, left: int = 3) -> dict:
    """openloop's JSON for a 4 s run, as much as pages reads of it."""
    return {"seconds": 4.0, "answered": answered, "status_errors": status_errors, "connection_errors": 0,
            "unanswered": 0, "in_flight_at_end": left, "latency_ms": {"p50": 40.0, "p99": p99}}


def test_a_run_counts_only_good_answers_and_divides_its_window_by_them():
    got = pages.record(answer(210, status_errors=10), container_s=8.0, busy_s=8.4)
    # 200 good answers in 4 s; the container's 8 CPU seconds are 40 ms each.
    assert got["rps"] == 50.0 and got["errors"] == 10 and got["in_flight_at_end"] == 3
    assert got["container_cpu_us"] == 40000.0 and got["machine_busy_us"] == 42000.0
    assert got["p50_ms"] == 40.0 and got["p99_ms"] == 120.0
    # The rest of the machine: 0.4 CPU-seconds in 4 s.
    assert got["others_cpus"] == 0.1


def test_only_a_shape_keeps_the_default_beside_it_and_every_peer():
    entries = pages.entrants((2, 32))
    kept = [c.name for c in pages.only(entries, ["4x16"])]
    # (A name filter once dropped flaskbox itself and the shape, and the
    # wait route's rounds, flaskbox's alone, divided by none of them.)
    assert kept[:2] == ["flaskbox", "flaskbox 4x16"]
    assert not any(name.startswith("flaskbox") for name in kept[2:]) and len(kept) == 6
    assert "flaskbox 4x16 switch 20 ms" in [c.name for c in pages.only(entries, ["switch"])]
    try:
        pages.only(entries, ["4x17"])
    except SystemExit as refused:
        assert "4x17" in str(refused) and "4x16" in str(refused)
    else:
        raise AssertionError("an unknown shape was taken")


def test_the_rounds_become_a_median_with_their_spread():
    got = pages.spread([50.0, 47.5, 61.2, 49.0, 52.0])
    assert got == {"median": 50.0, "min": 47.5, "max": 61.2, "by_round": [50.0, 47.5, 61.2, 49.0, 52.0]}
    # A percentile that fell on failed requests is worse than any measured:
    # it counts toward the median as such, and the spread has no top.
    failed = pages.spread([100.0, None, 120.0])
    assert failed["median"] == 120.0 and failed["min"] == 100.0 and failed["max"] is None
    assert pages.spread([None, None, 90.0])["median"] is None


def test_the_summary_holds_every_figure_and_sums_the_errors():
    runs = {"flaskbox": {"heavy @20": [pages.record(answer(200), 8.0, 8.4),
                                       pages.record(answer(180, status_errors=2), 8.0, 8.6)]}}
    got = pages.summarise(runs)["flaskbox"]["heavy @20"]
    assert set(got) == {*pages.FIGURES, "errors"} and got["errors"] == 2
    assert got["rps"]["by_round"] == [50.0, 44.5] and got["rps"]["median"] == 47.2


def test_the_open_loop_runs_at_half_the_better_peers_capacity():
    def rounds(*rps):
        return [{"rps": value} for value in rps]

    runs = {"flaskbox": {"heavy @64": rounds(70, 71, 72)},
            "nginx-gunicorn-sync": {"heavy @64": rounds(50, 52, 51)},
            "granian": {"heavy @64": rounds(55, 54, 60)}}
    assert pages.capacity(runs, "heavy @64") == 55
    # Without a peer (a smoke run), every contender's best.
    assert pages.capacity({"flaskbox": runs["flaskbox"]}, "heavy @64") == 71


def test_the_goals_compare_each_shape_with_the_peers_at_20_clients():
    def figures(rps, p99, cpu):
        return {"rps": {"median": rps}, "p99_ms": {"median": p99}, "container_cpu_us": {"median": cpu}}

    summary = {"flaskbox": {"heavy @20": figures(48, 900, 44000)},
               "flaskbox 4x1": {"heavy @20": figures(53, 420, 40500)},
               "nginx-gunicorn-sync": {"heavy @20": figures(52, 400, 41000)},
               "granian": {"heavy @20": figures(50, 380, 39000)}}
    got = pages.goals(summary, ["flaskbox", "flaskbox 4x1"], ["heavy"], 20)
    assert got["flaskbox"]["heavy @20"] == {"cpu": [44000, 41000, False], "p99": [900, 418.0, False],
                                            "rps": [48, 52, False]}
    assert got["flaskbox 4x1"]["heavy @20"] == {"cpu": [40500, 41000, True], "p99": [420, 418.0, False],
                                                "rps": [53, 52, True]}
    # A route nobody measured has no verdict.
    unmeasured = pages.goals(summary, ["flaskbox"], ["mixed"], 20)["flaskbox"]["mixed @20"]
    assert unmeasured["rps"] == [None, None, None]
