"""The image runs on a read-only root file system with only /tmp writable."""

import pytest

from helpers import docker

READ_ONLY = ("--read-only", "--tmpfs", "/tmp")


def test_production_serves_on_a_read_only_root(containers):
    c = containers.run(docker_args=READ_ONLY)
    c.wait_http("/")
    assert c.request("/static/style.css").status == 200
    assert c.exec("healthcheck.sh").returncode == 0


def test_debug_serves_on_a_read_only_root(containers, app_copy):
    c = containers.run("-d", "debug", docker_args=(*READ_ONLY, "-v", f"{app_copy}:/app:ro"))
    c.wait_http("/")


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_nothing_is_written_outside_tmp(containers, mode_args, app_copy):
    mounts = ("-v", f"{app_copy}:/app") if mode_args else ()
    c = containers.run(*mode_args, docker_args=mounts)
    c.wait_healthy()
    changes = docker("diff", c.name).stdout.split("\n")
    outside = [line for line in changes if line and not line[2:].startswith("/tmp")]
    assert outside == [], outside


def test_missing_writable_tmp_is_a_clear_error(containers):
    result = containers.run_once(docker_args=("--read-only",))
    assert result.returncode == 2
    assert "RUNTIME_DIR" in result.stderr and "--tmpfs /tmp" in result.stderr
