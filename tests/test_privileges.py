"""Requests are served by a non-root user in both modes."""

import pytest


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
    c.wait_until(lambda: c.exec("healthcheck.sh").returncode == 0, "the server to be up")
    uids = process_uids(c)
    assert "0" not in uids, f"processes running as root: {uids['0']}"
    commands = " | ".join(args for group in uids.values() for args in group)
    for server in servers:
        assert server in commands, commands
