"""Requests are served by a non-root user in both modes."""

import json

import pytest

from helpers import docker


def process_uids(container) -> dict[str, set[str]]:
    """uid -> set of command lines, for every process in the container."""
    found: dict[str, set[str]] = {}
    for _, uid, cmd in container.processes():
        found.setdefault(uid, set()).add(cmd)
    return found


@pytest.mark.parametrize("mode_args, servers", [
    ((), ("nginx: master", "nginx: worker", "uWSGI master", "uWSGI worker")),
    (("-d", "debug"), ("flask",)),
], ids=["production", "debug"])
def test_servers_run_as_non_root(containers, app_copy, mode_args, servers):
    mounts = ("-v", f"{app_copy}:/app") if mode_args else ()
    c = containers.run(*mode_args, docker_args=mounts)
    c.wait_healthy()
    uids = process_uids(c)
    assert "0" not in uids, f"processes running as root: {uids['0']}"
    commands = " | ".join(args for group in uids.values() for args in group)
    for server in servers:
        assert server in commands, commands


def test_started_as_root_the_servers_step_down(containers, image):
    c = containers.run(docker_args=("--user", "0"))
    c.wait_http("/")
    assert c.exec("healthcheck.sh").returncode == 0
    image_user = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["User"]
    uid = image_user.split(":")[0]
    # Only tini (PID 1, which serves nothing) keeps root; nginx, uWSGI and
    # the entry-point run as the image's user.
    # (The probe runs as that user too: docker exec would otherwise be root.)
    others = {(pid, owner, cmd) for pid, owner, cmd in c.processes(user=image_user) if pid != "1"}
    assert {owner for _, owner, _ in others} == {uid}, others
    commands = " | ".join(cmd for _, _, cmd in others)
    assert "nginx: worker process" in commands and "uWSGI worker" in commands
    assert "started as root: continuing as" in c.logs()


def test_commands_other_than_the_servers_keep_the_given_user(containers):
    result = containers.run_once("id", "-u", docker_args=("--user", "0"))
    assert result.stdout.strip() == "0"
