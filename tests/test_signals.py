"""Signals reach the servers: tini is PID 1 and `docker stop` is graceful."""

import threading
import time

import pytest

from helpers import docker


def pid1_command(container) -> str:
    result = container.exec("cat", "/proc/1/cmdline")
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\0", " ").strip()


def timed_stop(container, grace: int = 10) -> float:
    """docker stop with the given grace; returns the seconds it took. A
    container that ignored SIGTERM would be SIGKILLed at the end (exit 137)."""
    started = time.monotonic()
    docker("stop", "--time", str(grace), container.name, timeout=grace + 30)
    return time.monotonic() - started


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_pid1_is_tini_and_stop_is_clean_and_quick(containers, mode_args):
    c = containers.run(*mode_args)
    c.wait_healthy()
    assert pid1_command(c).startswith("/usr/bin/tini -- ")
    elapsed = timed_stop(c)
    assert c.exit_code() == 0, c.logs()
    assert elapsed < 5, f"stop took {elapsed:.1f}s\n{c.logs()}"


def test_request_in_flight_completes_during_stop(containers, fixture_image):
    c = containers.run(image=fixture_image["image"])
    c.wait_http("/")
    results = {}

    def slow_request():
        try:
            results["response"] = c.request("/sleep/3", timeout=15)
        except Exception as exc:  # noqa: BLE001 - reported below
            results["error"] = exc

    client = threading.Thread(target=slow_request)
    client.start()
    # Stop only once the request is inside a worker.
    c.wait_until(lambda: "sleep start 3" in c.logs(), "the request to reach a worker")
    elapsed = timed_stop(c)
    client.join(timeout=20)
    assert "error" not in results, f"{results['error']!r}\n{c.logs()}"
    assert results["response"].status == 200 and results["response"].text == "slept 3\n"
    assert c.exit_code() == 0, c.logs()
    # Done as soon as the work is: the request's 3 s, not the 10 s grace.
    assert elapsed < 8, f"stop took {elapsed:.1f}s\n{c.logs()}"
    logs = c.logs()
    assert logs.index("stopping: nginx drains, then uWSGI") < logs.index("goodbye to uWSGI")


def test_stop_while_the_app_is_still_importing(containers, fixture_image):
    c = containers.run(image=fixture_image["image"], env={"APP_MODULE": "slow:app", "IMPORT_SECONDS": "8"})
    c.wait_until(lambda: "Python main interpreter initialized" in c.logs(), "uWSGI to start importing")
    elapsed = timed_stop(c)
    # Not reloaded by SIGTERM (uWSGI's legacy meaning), not SIGKILLed at 10 s.
    assert c.exit_code() != 137, c.logs()
    assert elapsed < 5, f"stop took {elapsed:.1f}s\n{c.logs()}"
