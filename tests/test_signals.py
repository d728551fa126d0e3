"""Signals reach the servers: tini is PID 1 and `docker stop` is graceful."""

import time

import pytest

from helpers import docker


def pid1_command(container) -> str:
    result = container.exec("cat", "/proc/1/cmdline")
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\0", " ").strip()


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_pid1_is_tini_and_stop_is_clean_and_quick(containers, mode_args):
    c = containers.run(*mode_args)
    c.wait_until(lambda: c.exec("healthcheck.sh").returncode == 0, "the server to be up")
    assert pid1_command(c).startswith("/usr/bin/tini -- ")

    started = time.monotonic()
    # --time 10 is docker's default grace; a server that ignored SIGTERM would
    # be SIGKILLed at its end and exit 137.
    docker("stop", "--time", "10", c.name, timeout=30)
    elapsed = time.monotonic() - started
    assert c.exit_code() == 0, c.logs()
    assert elapsed < 5, f"stop took {elapsed:.1f}s\n{c.logs()}"
