"""compose.yaml: `dev` (debug mode, ./app bind-mounted, port 5000 on
127.0.0.1 only, a develop.watch sync rule) and `web` (production,
restart: always, 8091:80, a healthcheck, a read-only root with a tmpfs).

The file is checked as data, then by docker-compose itself, which also runs
both services. tests/run.sh installs docker-compose 1.29 (what Debian and
Ubuntu ship). Two keys are taken out of the copy it gets, and the tests say
why: `develop` (compose v2 only, newer than 1.29) and `ports` (this machine
has no bridge network; an override gives the services host networking and
their own PORT, which 1.29 refuses to combine with published ports)."""

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from containers import Container
from helpers import REPO, docker, free_port, share_with_container

COMPOSE = REPO / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def docker_compose(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is not installed: tests/run.sh installs it (apt-get install "
                    "docker-compose)")
    return subprocess.run(["docker-compose", "--project-directory", str(REPO), *args],
                          capture_output=True, text=True, timeout=timeout)


def copy_for_compose_v1(compose: dict, target: Path, *, drop_ports: bool) -> Path:
    data = json.loads(json.dumps(compose))
    for service in data["services"].values():
        service.pop("develop", None)
        if drop_ports:
            service.pop("ports", None)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def test_dev_service_is_the_debug_loop(compose):
    dev = compose["services"]["dev"]
    assert dev["command"] == ["-d", "debug"]
    assert "./app:/app" in dev["volumes"]
    # The debugger runs code: every published port is bound to loopback.
    assert dev["ports"] and all(str(p).startswith("127.0.0.1:") for p in dev["ports"]), dev["ports"]
    assert "127.0.0.1:5000:5000" in dev["ports"]
    assert {"action": "sync", "path": "./app", "target": "/app"} in dev["develop"]["watch"]
    assert dev["build"]["context"] == "."


def test_web_service_is_production(compose):
    web = compose["services"]["web"]
    assert "command" not in web and "APP_MODE" not in web.get("environment", {})
    assert web["restart"] == "always"
    assert "8091:80" in web["ports"]
    assert web["healthcheck"]["test"] == ["CMD", "/usr/local/bin/healthcheck.sh"]
    assert web["read_only"] is True and "/tmp:size=256m" in web["tmpfs"]
    assert web["build"]["context"] == "."


def test_build_arguments_default_to_the_dockerfiles(compose):
    """compose.yaml repeats the Dockerfile's ARG defaults (compose 1.29 would
    pass an unset argument as an empty string): they must agree."""
    dockerfile = (REPO / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG ([A-Z_]+)=(.*)$", dockerfile, re.MULTILINE))
    for service in ("dev", "web"):
        args = compose["services"][service]["build"]["args"]
        for name, value in args.items():
            assert name in defaults, f"{name} is not a Dockerfile ARG"
            assert value == f"${{{name}:-{defaults[name]}}}", \
                f"{service}: {name}={value!r}, Dockerfile {defaults[name]!r}"


def test_docker_compose_accepts_the_file(compose, tmp_path):
    copy = copy_for_compose_v1(compose, tmp_path / "compose.yaml", drop_ports=False)
    result = docker_compose("-f", str(copy), "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert f"{REPO / 'app'}:/app:rw" in resolved["dev"]["volumes"]
    assert resolved["dev"]["ports"] == ["127.0.0.1:5000:5000/tcp"]
    assert resolved["web"]["ports"] == [{"published": 8091, "target": 80}]


@pytest.fixture
def project(compose, image, app_copy, tmp_path):
    """compose.yaml (less `develop` and `ports`) plus an override that runs
    the image under test with host networking, free ports and a copy of app/."""
    ports = {"dev": free_port(), "web": free_port()}
    override = {"services": {
        name: {"image": image, "network_mode": "host", "environment": {"PORT": str(port)}}
        for name, port in ports.items()
    }}
    override["services"]["dev"]["volumes"] = [f"{app_copy}:/app"]
    files = [copy_for_compose_v1(compose, tmp_path / "compose.yaml", drop_ports=True),
             tmp_path / "override.yaml"]
    files[1].write_text(yaml.safe_dump(override))
    name = f"flaskbox-test-{uuid.uuid4().hex[:10]}"
    args = ["-p", name, *[arg for f in files for arg in ("-f", str(f))]]
    networks_before = set(docker("network", "ls", "-q").stdout.split())
    yield {"args": args, "ports": ports, "name": name}
    docker_compose(*args, "down", "-v", "--timeout", "5")
    assert set(docker("network", "ls", "-q").stdout.split()) == networks_before, "compose created a network"


def service_container(project: dict, service: str) -> Container:
    result = docker_compose(*project["args"], "ps", "-q", service)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    return Container(name=result.stdout.strip(), port=project["ports"][service], image="")


def test_dev_service_serves_and_reloads(project, app_copy):
    result = docker_compose(*project["args"], "up", "-d", "--no-build", "dev")
    assert result.returncode == 0, result.stderr
    c = service_container(project, "dev")
    c.wait_http("/api/hello")
    token = f"Hi{uuid.uuid4().hex[:8]}"
    source = app_copy / "app.py"
    source.write_text(source.read_text().replace('f"Hello, {name}!"', f'f"{token}, {{name}}!"'))
    share_with_container(app_copy)
    c.wait_until(lambda: f"{token}, World!" in c.request("/api/hello").text, "the edit to be served",
                 timeout=2)
    # `user: root` only until the step down: nothing but tini keeps root.
    owners = {uid for _, uid, _ in c.app_processes(user="10001")}
    assert owners == {"10001"}, c.processes(user="10001")


def test_web_service_is_healthy_on_a_read_only_root(project):
    result = docker_compose(*project["args"], "up", "-d", "--no-build", "web")
    assert result.returncode == 0, result.stderr
    c = service_container(project, "web")
    c.wait_http("/")
    state = c.inspect()
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert "/tmp" in state["HostConfig"]["Tmpfs"]
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "always"
    c.wait_until(lambda: c.inspect()["State"]["Health"]["Status"] == "healthy",
                 "docker to report the container healthy", timeout=60, interval=1)
