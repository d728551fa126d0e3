"""The swarm stack files agree with each other and with the image: rendered
by `docker stack config` (the docker CLI's own loader, no engine needed),
they ask for what docs/swarm.md promises, and their stop grace period covers
the stop budget the image defines (lib/flaskbox/layout.py). tests/test_swarm.py
runs the host-network file on a real swarm."""

import os
import re
import subprocess

import pytest
import yaml

from flaskbox import layout
from helpers import REPO

STACKS = {"ingress": REPO / "deploy/swarm/stack.yaml", "host": REPO / "deploy/swarm/stack.host.yaml"}


def render(path, **env: str) -> subprocess.CompletedProcess:
    # DOCKER_HOST points nowhere: rendering must not need an engine.
    return subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent", **env})


def service(which: str) -> dict:
    result = render(STACKS[which], IMAGE="registry.example.com/flaskbox:1.0.0", PORT="8080")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]["web"]


def seconds(duration: str) -> int:
    """A duration as the docker CLI renders it (12s, 1m0s), in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(\d+)s", duration)
    assert match, duration
    return int(match[1] or 0) * 60 + int(match[2])


@pytest.mark.parametrize("which", STACKS)
@pytest.mark.parametrize("missing", ["IMAGE", "PORT"])
def test_image_and_port_are_required(which, missing):
    env = {"IMAGE": "flaskbox:1", "PORT": "8080"}
    del env[missing]
    result = render(STACKS[which], **env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing} to" in result.stderr


def test_both_files_are_one_service_on_two_networks():
    ingress, host = service("ingress"), service("host")
    assert ingress.pop("ports") == [{"mode": "ingress", "target": 8080, "published": 8080, "protocol": "tcp"}]
    assert "networks" not in ingress
    # No published port at all on the host network: see the file's comment.
    assert "ports" not in host
    assert host.pop("networks") == {"host": None}
    # Replicated behind the mesh; one task on every node on the host network.
    assert ingress["deploy"].pop("replicas") == 2
    assert "mode" not in ingress["deploy"]
    assert host["deploy"].pop("mode") == "global"
    assert "replicas" not in host["deploy"]
    # Metrics on both, announced the same way.
    for web in (ingress, host):
        assert web["environment"]["METRICS_PORT"] == "9100"
        assert web["deploy"]["labels"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
                                           "prometheus.io/path": "/metrics"}
    assert ingress == host


def test_replicas_come_from_the_deploy_command():
    # An update by the documented command keeps the scale it names.
    result = render(STACKS["ingress"], IMAGE="flaskbox:1", PORT="8080", REPLICAS="5")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["services"]["web"]["deploy"]["replicas"] == 5


@pytest.mark.parametrize("which", STACKS)
def test_image_and_port_come_from_the_environment(which):
    web = service(which)
    assert web["image"] == "registry.example.com/flaskbox:1.0.0"
    assert web["environment"]["PORT"] == "8080"


def test_updates_start_first_and_roll_back_on_failure():
    deploy = service("host")["deploy"]
    update, rollback = deploy["update_config"], deploy["rollback_config"]
    # Capacity never drops: the new task is healthy before the old one stops.
    assert update["order"] == rollback["order"] == "start-first"
    assert update["parallelism"] == rollback["parallelism"] == 1
    assert update["failure_action"] == "rollback"
    # A rollback that fails waits for an operator rather than looping.
    assert rollback["failure_action"] == "pause"
    # A task that dies or turns unhealthy within the monitor window counts:
    # at least two health intervals.
    interval = seconds(service("host")["healthcheck"]["interval"])
    assert seconds(update["monitor"]) >= 2 * interval
    assert seconds(rollback["monitor"]) >= 2 * interval
    assert service("ingress")["deploy"]["replicas"] >= 2


def test_health_check_is_the_images_own():
    check = service("host")["healthcheck"]
    assert check["test"] == ["CMD", "/usr/local/bin/healthcheck.sh"]
    # Never longer between checks than the image's own HEALTHCHECK (10 s).
    assert seconds(check["interval"]) <= 10


def test_grace_period_covers_the_images_stop_budget():
    # The entry-point kills nginx DRAIN + KILL_AFTER seconds after the
    # signal, then uWSGI MERCY + KILL_AFTER seconds after that: the longest
    # a stop can take before the swarm's own SIGKILL.
    budget = (layout.STOP_DRAIN_SECONDS + layout.STOP_KILL_AFTER_SECONDS
              + layout.STOP_MERCY_SECONDS + layout.STOP_KILL_AFTER_SECONDS)
    grace = seconds(service("host")["stop_grace_period"])
    assert budget + 2 <= grace <= budget + 10, (budget, grace)


def test_cpu_limit_sizes_the_servers_and_tmp_is_bounded():
    web = service("host")
    limits = web["deploy"]["resources"]["limits"]
    # A CPU limit is what the entry-point sizes uWSGI and nginx from.
    assert float(limits["cpus"]) >= 1
    assert web["read_only"] is True
    assert web["volumes"] == [{"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 268435456}}]
