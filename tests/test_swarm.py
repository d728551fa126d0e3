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

import ctypes
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import REPO, free_port

pytestmark = pytest.mark.slow

HOST_STACK = REPO / "deploy/swarm/stack.host.yaml"
INGRESS_STACK = REPO / "deploy/swarm/stack.yaml"
STACK = "flaskbox"
# Client threads and the pause between two requests of one: about 150
# requests a second, each on a new connection, a steady load that leaves the
# 2 CPUs room for four tasks starting and stopping.
CLIENTS = 4
PAUSE = 0.02
# Bounds on every wait, in seconds.
ENGINE_START = 60
TASKS_READY = 90
UPDATE_DONE = 180
# Load once the swarm says it is done: the new tasks carry this many
# requests alone, proving they serve.
AFTER = 100

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(path: str) -> None:
    """Moves the calling thread (only) into the network namespace at path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def poll(predicate, what: str, timeout: float, interval: float = 0.5, explain=lambda: ""):
    """predicate()'s first truthy value, polled until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s\n{explain()}")
        time.sleep(interval)


class Node:
    """A Docker engine of its own in a network namespace of its own, made a
    single-node swarm. Everything it creates is under `root` or in the
    namespace, and teardown() removes both."""

    def __init__(self):
        self.netns = f"flaskbox-swarm-{uuid.uuid4().hex[:8]}"
        self.netns_path = f"/run/netns/{self.netns}"
        # Short: the engine's unix sockets live under it (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="flaskbox-swarm-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        self.dockerd: subprocess.Popen | None = None

    # --- start ---------------------------------------------------------
    def start(self) -> None:
        for tool in ("ip", "nsenter", "dockerd"):
            if not shutil.which(tool):
                pytest.fail(f"{tool} is missing: tests/run.sh installs it", pytrace=False)
        subprocess.run(["ip", "netns", "add", self.netns], check=True, timeout=30)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True, timeout=30)
        # What docs/swarm.md asks of every node on the host network.
        subprocess.run(["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w",
                        "net.ipv4.tcp_migrate_req=1"], check=True, timeout=30)
        with open(self.log, "wb") as log:
            self.dockerd = subprocess.Popen(
                ["nsenter", f"--net={self.netns_path}", "dockerd",
                 "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                 "-H", f"unix://{self.socket}", "--pidfile", str(self.root / "docker.pid"),
                 "--bridge=none", "--iptables=false", "--ip6tables=false"],
                # What docs/swarm.md asks of a node that has its images
                # without a registry: no pull at a task's start.
                env={**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # Loud, never skipped: without this engine the module proves nothing.
        try:
            poll(self._answers, "the swarm's own Docker engine answering", ENGINE_START,
                 explain=self.log_tail)
        except AssertionError as exc:
            pytest.fail(str(exc), pytrace=False)
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1")

    def _answers(self) -> bool:
        if self.dockerd.poll() is not None:
            raise AssertionError(f"dockerd exited with code {self.dockerd.returncode}\n{self.log_tail()}")
        try:
            return self.docker("info", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def docker(self, *args: str, check: bool = True, timeout: float = 120,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", "-H", f"unix://{self.socket}", *args], capture_output=True,
                                text=True, timeout=timeout, env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {result.stderr}\n{self.log_tail()}")
        return result

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "dockerd's log ends:\n" + "\n".join(text.splitlines()[-lines:])

    def load(self, image: str) -> None:
        """`docker save | docker load`, from the engine that built it."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", f"unix://{self.socket}", "load"], stdin=save.stdout,
                              capture_output=True, text=True, timeout=300)
        save.stdout.close()
        assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr

    def variant(self, image: str, tag: str, change: str) -> str:
        """image with one Dockerfile instruction changed, tagged tag, made
        in this engine (docker commit of a container never started)."""
        container = self.docker("create", image).stdout.strip()
        self.docker("commit", "--change", change, container, tag)
        self.docker("rm", container)
        return tag

    # --- teardown ------------------------------------------------------
    def teardown(self) -> list[str]:
        """Removes everything; returns what it had to force, or could not."""
        problems: list[str] = []
        if self.dockerd is not None and self.dockerd.poll() is None:
            for stack in self.docker("stack", "ls", "--format", "{{.Name}}", check=False).stdout.split():
                self.docker("stack", "rm", stack, check=False)
            try:
                poll(lambda: self.docker("ps", "-aq", check=False).stdout.strip() == "",
                     "the stack's containers gone", 60)
            except AssertionError as exc:
                problems.append(str(exc))
            self.docker("swarm", "leave", "--force", check=False)
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("dockerd ignored SIGTERM for 30 s: killed")
                self.dockerd.kill()
                self.dockerd.wait(timeout=30)
        problems += self._kill_stragglers()
        problems += self._unmount()
        self._remove_interfaces()
        subprocess.run(["ip", "netns", "del", self.netns], check=False, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
        if Path(self.netns_path).exists():
            problems.append(f"network namespace {self.netns} is still there")
        if self.root.exists():
            problems.append(f"{self.root} is still there")
        return problems

    def _kill_stragglers(self) -> list[str]:
        """Processes still in the namespace (containerd, a shim, a task on
        the host network) once dockerd is gone: started by this engine, so
        ours to kill, one by one."""
        try:
            ours = os.stat(self.netns_path).st_ino
        except FileNotFoundError:
            return []
        killed = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.stat(proc / "ns/net").st_ino == ours:
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(proc.name)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return [f"killed processes left in the namespace: {killed}"] if killed else []

    def _unmount(self) -> list[str]:
        """The engine's network namespaces are bind mounts under its exec
        root; one (`default`) outlives the engine."""
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if line.split()[1].startswith(f"{self.root}/")]
        failed = [m for m in sorted(mounts, reverse=True)
                  if subprocess.run(["umount", m], capture_output=True, timeout=30).returncode != 0]
        return [f"could not unmount {failed}"] if failed else []

    def _remove_interfaces(self) -> None:
        """docker_gwbridge and any other interface the swarm made in the
        namespace (deleting the namespace would drop them too; this says so
        explicitly)."""
        listing = subprocess.run(["ip", "-n", self.netns, "-j", "link", "show"], capture_output=True,
                                 text=True, timeout=30)
        if listing.returncode != 0:
            return
        for link in json.loads(listing.stdout or "[]"):
            if link["ifname"] != "lo":
                subprocess.run(["ip", "-n", self.netns, "link", "del", link["ifname"]],
                               capture_output=True, timeout=30)


@dataclass
class Result:
    sent: float
    status: int | None
    error: str | None = None
    took: float = 0.0


@dataclass
class Traffic:
    """CLIENTS threads in the node's network namespace, each sending
    GET /api/hello?name=TOKEN on a new connection, then pausing PAUSE. A
    request counts as served only with a 200 whose body greets its own
    token. At most `seconds` long, whatever happens."""

    netns_path: str
    port: int
    seconds: float = 300
    results: list[Result] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Traffic:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "a client did not finish"

    def since(self, moment: float) -> list[Result]:
        with self._lock:
            return [r for r in self.results if r.sent >= moment]

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status != 200]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            key = str(r.status) if r.status is not None else r.error or "error"
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))

    def _client(self) -> None:
        enter_netns(self.netns_path)
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            result = self._request()
            with self._lock:
                self.results.append(result)
            time.sleep(PAUSE)

    def _request(self) -> Result:
        result = self._exchange()
        result.took = time.monotonic() - result.sent
        return result

    def _exchange(self) -> Result:
        token = uuid.uuid4().hex
        sent = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", f"/api/hello?name={token}", headers={"Connection": "close"})
            response = conn.getresponse()
            body = response.read()
            if response.status == 200 and json.loads(body) != {"message": f"Hello, {token}!"}:
                return Result(sent, None, f"wrong body {body[:80]!r}")
            return Result(sent, response.status)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return Result(sent, None, type(exc).__name__)
        finally:
            conn.close()


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


def served_since(traffic: Traffic, moment: float) -> None:
    """Waits until AFTER requests sent from moment on were answered."""
    poll(lambda: len([r for r in traffic.since(moment) if r.status == 200]) >= AFTER,
         f"{AFTER} requests answered", 60, interval=0.1, explain=traffic.summary)


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
