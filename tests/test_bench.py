"""The benchmark harness cannot rot: a smoke run (2 s per contender) builds
its images, drives every contender with wrk and writes its results."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow


def test_bench_smoke_run_measures_every_contender(tmp_path, image):
    # `image` first: the suite's build of this tree, which the bench's own
    # then takes from the layer cache instead of building them beside it
    # (the longest modules start together, tests/conftest.py's LONGEST_FIRST).
    base = os.environ.get("BASE_IMAGE", "ubuntu:24.04")
    # The second base is the same one here: the path is exercised, the build
    # comes from the cache (bench/run.sh gives it Debian 13).
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--smoke", "--out", str(tmp_path),
         "--base-image", base, "--second-base", base],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "latest.json").read_text())
    contenders = {"flaskbox", "flaskbox-gevent", "flaskbox-second-base", "tiangolo-config", "bare-pass",
                  "granian", "gunicorn", "gunicorn-gevent", "uwsgi-http", "flask-dev"}
    assert set(results["summary"]) == contenders
    for name in contenders:
        hello = results["summary"][name]["hello"]
        # Real traffic was measured, not a placeholder: wrk saw requests.
        assert hello["rps"] > 0 and hello["p99_ms"] > 0, (name, hello)
        assert len(results["runs"][name]["hello"]) == 1
        # Where the time went: the app server and wrk always spend CPU.
        cpu = hello["cpu_us_per_request"]
        assert cpu["app server"] > 0 and cpu["client"] > 0, (name, cpu)
    for name in ("flaskbox", "tiangolo-config", "bare-pass"):  # nginx in front
        assert results["summary"][name]["hello"]["cpu_us_per_request"]["nginx"] > 0
    assert results["summary"]["flaskbox"]["hello"]["errors"] == 0
    assert results["summary"]["flaskbox"]["hello"]["rps_ratio_to_flaskbox"] == 1.0
    image = results["image"]
    assert 0 < image["cold_start_s"]["median"] < 30 and len(image["cold_start_s"]["all"]) == 3
    assert 0 < image["idle_stop_s"]["median"] < 10
    assert 0 < image["idle_memory_mb"]["pss"] < image["idle_memory_mb"]["rss"]
    assert 0 < image["added_mb"] < image["image_mb"]
    assert image["rebuild_after_app_change_s"] > 0
    # The progress lines and the chart.
    second = results["second_base"]
    assert second["base_image"] == base and second["python"].startswith("Python 3.")
    assert 0 < second["cold_start_s"]["median"] < 30 and 0 < second["idle_memory_mb"]["rss"]
    # Streams held per worker class: gevent serves every one of them.
    streams = results["streams"]
    assert streams["gevent"]["streams_served"] == streams["gevent"]["clients"] > 0
    assert streams["gevent"]["rss_streams_mb"] > 0 and streams["sync"]["clients"] > 0
    assert "[bench] [10/10] round 1" in result.stderr
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")
