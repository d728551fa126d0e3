"""Docker Swarm, for real: deploy/swarm/stack.host.yaml on a single-node
swarm, on a Docker engine of its own that this module starts (its own data
root, exec root, socket and pid file; no bridge, no iptables) in a network
namespace of its own. That namespace is the node's host network: whatever
the swarm creates there (docker_gwbridge, the ingress sandbox's veth, the
ports 2377, 7946 and 4789) never touches this machine's, and
net.ipv4.tcp_migrate_req=1 is set there as docs/swarm.md tells operators to
on every node.

Under steady load on 127.0.0.1:PORT, a fresh connection per request, every
request counted with its status:
- a rolling update to a new image loses no request;
- an update to an image whose tasks exit is rolled back by the swarm
  itself, losing no request.
And secrets made by `docker secret create` reach the app as VAR_FILE, and
nginx as TLS_CERT and TLS_KEY. The engine, its directories and the namespace (with every interface in it)
are removed afterwards."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from engines import Engine, add_netns, delete_netns, enter_netns, poll, require
from helpers import REPO, free_port
from swarm_traffic import AFTER, Traffic, served_since

pytestmark = pytest.mark.slow

HOST_STACK = REPO / "deploy/swarm/stack.host.yaml"
INGRESS_STACK = REPO / "deploy/swarm/stack.yaml"
STACK = "flaskbox"
# Bounds on every wait, in seconds.
TASKS_READY = 90
UPDATE_DONE = 180


class Node(Engine):
    """A Docker engine of its own in a network namespace of its own, made a
    single-node swarm. Everything it creates is under `root` or in the
    namespace, and teardown() removes both."""

    def __init__(self):
        super().__init__(f"flaskbox-swarm-{uuid.uuid4().hex[:8]}",
                         Path(tempfile.mkdtemp(prefix="flaskbox-swarm-", dir="/tmp")))

    def start(self) -> None:
        require("ip", "nsenter", "dockerd")
        add_netns(self.name)
        self.tune_netns()
        super().start()
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1")

    def load(self, image: str) -> None:
        """`docker save | docker load`, from the engine that built it."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", f"unix://{self.socket}", "load"], stdin=save.stdout,
                              capture_output=True, text=True, timeout=300)
        save.stdout.close()
        assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr

    def teardown(self) -> list[str]:
        """Removes everything; returns what it had to force, or could not."""
        problems: list[str] = []
        if self.running():
            for stack in self.docker("stack", "ls", "--format", "{{.Name}}", check=False).stdout.split():
                self.docker("stack", "rm", stack, check=False)
            try:
                poll(lambda: self.docker("ps", "-aq", check=False).stdout.strip() == "",
                     "the stack's containers gone", 60)
            except AssertionError as exc:
                problems.append(str(exc))
        problems += self.stop()
        problems += delete_netns(self.name)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.exists():
            problems.append(f"{self.root} is still there")
        return problems


class Stack:
    """The stack file deployed on the node, and what the swarm says of it."""

    def __init__(self, node: Node, port: int, image: str, file: Path = HOST_STACK, name: str = STACK,
                 tasks: int = 1):
        # stack.host.yaml is global: one task on this one node.
        self.node, self.port, self.image, self.file, self.name = node, port, image, file, name
        self.count = tasks
        self.service = f"{name}_web"
        self.setup_seconds = 0.0

    def deploy(self, image: str) -> None:
        # As docs/swarm.md says, with the image already on the node.
        self.node.docker("stack", "deploy", "--resolve-image", "never", "-c", str(self.file), self.name,
                         env={"IMAGE": image, "PORT": str(self.port)})

    def remove(self) -> None:
        self.node.docker("stack", "rm", self.name, check=False)

    def inspect(self) -> dict:
        return json.loads(self.node.docker("service", "inspect", self.service).stdout)[0]

    def update_status(self) -> dict:
        return self.inspect().get("UpdateStatus") or {}

    def tasks(self, desired: str = "running") -> list[dict]:
        out = self.node.docker("service", "ps", self.service, "--no-trunc", "--format", "{{json .}}",
                               "--filter", f"desired-state={desired}").stdout
        return [json.loads(line) for line in out.splitlines()]

    def explain(self) -> str:
        tasks = self.node.docker("service", "ps", self.service, "--no-trunc", check=False).stdout
        return f"{tasks}\nupdate status: {self.update_status()}\n{self.node.log_tail()}"

    def wait_serving(self, image: str) -> None:
        """`count` tasks of image running (healthy: a task with a health
        check is running only once healthy)."""
        def ready():
            tasks = self.tasks()
            return len(tasks) == self.count and all(
                t["Image"] == image and t["CurrentState"].startswith("Running") for t in tasks)
        poll(ready, f"{self.count} healthy task(s) of {image}", TASKS_READY, explain=self.explain)

    def wait_update(self, before: dict, done: set[str]) -> dict:
        """The update that follows `before` (the previous UpdateStatus) in
        one of the `done` states; fails at once on a pause."""
        def finished():
            status = self.update_status()
            if status.get("StartedAt") == before.get("StartedAt"):
                return None
            if status.get("State") in {"paused", "rollback_paused"}:
                raise AssertionError(f"the update paused: {status}\n{self.explain()}")
            return status if status.get("State") in done else None
        return poll(finished, f"the update to reach {done}", UPDATE_DONE, explain=self.explain)


@pytest.fixture(scope="module")
def swarm(image):
    node = Node()
    try:
        started = time.monotonic()
        node.start()
        node.load(image)
        stack = Stack(node, free_port(), image)
        stack.deploy(image)
        stack.wait_serving(image)
        stack.setup_seconds = time.monotonic() - started
        yield stack
    finally:
        problems = node.teardown()
        # Nothing of the swarm's may reach this machine's own network.
        assert subprocess.run(["ip", "link", "show", "docker_gwbridge"], capture_output=True,
                              timeout=30).returncode != 0, "docker_gwbridge exists outside the namespace"
        assert not problems, problems


def test_rolling_update_loses_no_request(swarm, figure):
    figure("engine, swarm, image load and first deploy", f"{swarm.setup_seconds:.0f} s")
    new = swarm.node.variant(swarm.image, "flaskbox-swarm:next", "LABEL org.flaskbox.test=next")
    old_tasks = {t["ID"] for t in swarm.tasks()}
    before = swarm.update_status()
    with Traffic(swarm.node.netns_path, swarm.port) as traffic:
        # Requests before the update, through it, and after it.
        served_since(traffic, traffic.started)
        began = time.monotonic()
        swarm.deploy(new)
        status = swarm.wait_update(before, {"completed"})
        took = time.monotonic() - began
        served_since(traffic, time.monotonic())
    assert status["State"] == "completed", status
    failures = traffic.failures()
    assert not failures, f"{traffic.summary()}; first failures: {failures[:5]}\n{swarm.explain()}"
    swarm.wait_serving(new)
    assert not old_tasks & {t["ID"] for t in swarm.tasks()}, "an old task is still running"
    assert len(traffic.results) >= 3 * AFTER
    figure("start-first rolling update of the node's task on the host network",
           f"{took:.0f} s, {len(traffic.results)} requests, {len(failures)} failed")


def test_broken_update_is_rolled_back_by_the_swarm(swarm, figure):
    current = swarm.inspect()["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    # Its tasks exit at once: APP_MODULE names no module (exit code 2),
    # before nginx ever listens.
    broken = swarm.node.variant(swarm.image, "flaskbox-swarm:broken",
                                "ENV APP_MODULE=flaskbox_no_such_module:app")
    before = swarm.update_status()
    with Traffic(swarm.node.netns_path, swarm.port) as traffic:
        served_since(traffic, traffic.started)
        began = time.monotonic()
        swarm.deploy(broken)
        status = swarm.wait_update(before, {"completed", "rollback_completed"})
        took = time.monotonic() - began
        served_since(traffic, time.monotonic())
    assert status["State"] == "rollback_completed", f"{status}\n{swarm.explain()}"
    assert swarm.inspect()["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == current
    # The swarm really tried the broken image, and saw its task fail.
    tried = [t for t in swarm.tasks("shutdown") if t["Image"] == broken]
    assert any("non-zero exit (2)" in t["Error"] for t in tried), swarm.explain()
    swarm.wait_serving(current)
    failures = traffic.failures()
    assert not failures, f"{traffic.summary()}; first failures: {failures[:5]}\n{swarm.explain()}"
    figure("update to an image whose tasks exit, rolled back by the swarm",
           f"{took:.0f} s, {len(traffic.results)} requests, {len(failures)} failed")


def test_ingress_stack_file_deploys_healthy_tasks(swarm):
    """deploy/swarm/stack.yaml, the default (ingress) file, on the same
    swarm: accepted as it is, its port published through the routing mesh,
    and both tasks pass the image's health check (a request through nginx
    to a uWSGI worker). This engine runs without iptables, so the mesh
    itself carries no traffic here; the host-network tests above do."""
    ingress = Stack(swarm.node, free_port(), swarm.image, INGRESS_STACK, "flaskbox-ingress", tasks=2)
    try:
        ingress.deploy(swarm.image)
        ingress.wait_serving(swarm.image)
        published = {"Protocol": "tcp", "TargetPort": ingress.port, "PublishedPort": ingress.port,
                     "PublishMode": "ingress"}
        assert ingress.inspect()["Endpoint"]["Ports"] == [published]
    finally:
        ingress.remove()


def test_secrets_reach_the_app_and_nginx_as_files(swarm, fixture_image, tmp_path):
    """docker secret create, as docs/swarm.md shows: an app's token as
    APP_TOKEN_FILE, and a certificate and its key (readable by the image's
    user only) as TLS_CERT and TLS_KEY. The test app, asked over HTTPS,
    answers with APP_TOKEN; the service's spec, the container's and the log
    show only paths."""
    token = f"token-{uuid.uuid4().hex}"
    (tmp_path / "token").write_text(token + "\n")  # echo's newline, dropped
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    node, name, image = swarm.node, "flaskbox-secrets", fixture_image["image"]
    node.load(image)
    for secret, path in (("flaskbox-token", "token"), ("flaskbox-tls-cert", "tls.crt"),
                         ("flaskbox-tls-key", "tls.key")):
        node.docker("secret", "create", secret, str(tmp_path / path))
    port, tls_port = free_port(), free_port()
    try:
        node.docker("service", "create", "--detach", "--name", name, "--network", "host",
                    "--secret", "source=flaskbox-token,target=app_token",
                    "--secret", "source=flaskbox-tls-cert,target=tls.crt",
                    "--secret", "source=flaskbox-tls-key,target=tls.key,uid=10001,gid=10001,mode=0400",
                    "-e", f"PORT={port}", "-e", f"TLS_PORT={tls_port}",
                    "-e", "APP_TOKEN_FILE=/run/secrets/app_token",
                    "-e", "TLS_CERT=/run/secrets/tls.crt", "-e", "TLS_KEY=/run/secrets/tls.key", image)

        def container():
            found = node.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}",
                                "--filter", "health=healthy").stdout.split()
            return found[0] if found else None

        def explain():
            return node.docker("service", "ps", name, "--no-trunc", check=False).stdout + node.log_tail()

        task = poll(container, "the service's task healthy", TASKS_READY, explain=explain)
        # nginx serves the secret's certificate, and the app has the token.
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        answers: list = []

        def fetch():
            enter_netns(node.netns_path)
            conn = http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=10, context=context)
            try:
                conn.request("GET", "/env/APP_TOKEN")
                response = conn.getresponse()
                answers.append((response.status, json.loads(response.read())))
            finally:
                conn.close()

        thread = threading.Thread(target=fetch)
        thread.start()
        thread.join(30)
        assert answers == [(200, {"value": token})]
        spec = node.docker("service", "inspect", name).stdout
        env = node.docker("inspect", "--format", "{{json .Config.Env}}", task).stdout
        logs = node.docker("logs", task)
        path = "APP_TOKEN_FILE=/run/secrets/app_token"
        assert path in spec and path in env
        assert token not in spec + env + logs.stdout + logs.stderr
        assert "APP_TOKEN: read from the file that APP_TOKEN_FILE names" in logs.stderr
    finally:
        node.docker("service", "rm", name, check=False)
        poll(lambda: not node.docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={name}",
                                     check=False).stdout.strip(), "the service's containers gone", 60)
        for secret in ("flaskbox-token", "flaskbox-tls-cert", "flaskbox-tls-key"):
            node.docker("secret", "rm", secret, check=False)
