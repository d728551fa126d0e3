"""Docker Swarm on three nodes, as docs/swarm.md's walkthrough runs it:
three Docker engines, each in a network namespace of its own (its node's
host network, 198.18.0.1-3) with its own data root, exec root, socket, pid
file, /run/containerd (a mount namespace of its own) and cgroup parent,
made three managers of one swarm. A fourth namespace (198.18.0.254) holds
the bridge between them, the load balancer (Debian's nginx, with the
configuration docs/swarm.md gives), the clients and Prometheus (with the
docs' scrape configs). The image under test is loaded into each engine with
`docker save | docker load`; no registry.

deploy/swarm/stack.host.yaml runs one task per node. Under steady load
through the load balancer, every request checked for its own answer:
- a rolling update loses no request, and the tasks stay one per node;
- a drained node's task stops and comes back, losing no request;
- a node killed -9 (every process of it, and its link) loses at most the
  requests it was answering (reported), and gets its task back when it
  returns;
- Prometheus finds every task on every node exactly once, for both stack
  files (stack.yaml's tasks from a Prometheus on the stack's own network).
Everything is removed afterwards: engines, their processes, mounts and
cgroups, the namespaces and the directories."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from test_swarm import Traffic, enter_netns, poll

from helpers import REPO

pytestmark = pytest.mark.slow

DOCS = REPO / "docs/swarm.md"
HOST_STACK = REPO / "deploy/swarm/stack.host.yaml"
INGRESS_STACK = REPO / "deploy/swarm/stack.yaml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NODES = 3
SUBNET = "198.18.0"
BALANCER_ADDRESS = f"{SUBNET}.254"
# The swarm's overlay networks and each engine's own (docker_gwbridge).
SWARM_POOL = "198.18.128.0/18"
ENGINE_POOL = "base=198.18.192.0/18,size=24"
PORT, INGRESS_PORT, METRICS_PORT = 8080, 8081, 9100
STACK = "flaskbox"
# Bounds on every wait, in seconds.
ENGINE_START = 60
TASKS_READY = 120
UPDATE_DONE = 240
NODE_DOWN = 60
# Requests answered after an event, proving the remaining tasks serve.
AFTER = 100


def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {result.stderr}")
    return result


def in_netns(path: str, function):
    """function() run in a thread inside the network namespace at path."""
    outcome: dict = {}

    def target():
        try:
            enter_netns(path)
            outcome["value"] = function()
        except Exception as exc:  # noqa: BLE001 (handed to the caller)
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def docs_block(language: str, marker: str) -> str:
    """The fenced block of docs/swarm.md in that language that holds marker."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"docs/swarm.md: expected one {language} block with {marker!r}"
    return found[0]


def kill_processes(pids: set[int]) -> list[int]:
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def namespace_pids(netns_path: str) -> set[int]:
    try:
        inode = os.stat(netns_path).st_ino
    except FileNotFoundError:
        return set()
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.stat(proc / "ns/net").st_ino == inode:
                    pids.add(int(proc.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return pids


class Machine:
    """One node: a network namespace linked to the balancer's bridge, and a
    Docker engine in it with everything of its own. kill() is the machine
    dying; start() again is it coming back with its disks."""

    def __init__(self, cluster: Cluster, index: int):
        self.cluster, self.index = cluster, index
        self.name = f"{cluster.prefix}-n{index}"
        self.netns_path = f"/run/netns/{self.name}"
        self.address = f"{SUBNET}.{index}"
        self.root = cluster.root / f"n{index}"
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        # Containers' cgroups (cgroupfs driver), apart from the host's.
        self.cgroup = f"{cluster.prefix}-n{index}"
        self.link = f"v{index}"
        self.dockerd: subprocess.Popen | None = None
        self.node_id = ""

    def plumb(self) -> None:
        run("ip", "netns", "add", self.name)
        lb = self.cluster.netns
        # Both ends made inside namespaces: nothing in this machine's own.
        run("ip", "-n", lb, "link", "add", self.link, "type", "veth",
            "peer", "name", "eth0", "netns", self.name)
        run("ip", "-n", lb, "link", "set", self.link, "master", "br0", "up")
        run("ip", "-n", self.name, "addr", "add", f"{self.address}/24", "dev", "eth0")
        run("ip", "-n", self.name, "link", "set", "eth0", "up")
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        # What docs/swarm.md asks of every node on the host network.
        run("ip", "netns", "exec", self.name, "sysctl", "-q", "-w", "net.ipv4.tcp_migrate_req=1")

    def start(self) -> None:
        self.root.mkdir(exist_ok=True)
        # A mount namespace of its own: a fresh /run/containerd (shim
        # sockets) and /run/docker, gone with the engine.
        script = ("mount -t tmpfs -o size=16m tmpfs /run/containerd && "
                  "mount -t tmpfs -o size=16m tmpfs /run/docker && exec dockerd \"$@\"")
        with open(self.log, "ab") as log:
            self.dockerd = subprocess.Popen(
                ["nsenter", f"--net={self.netns_path}", "unshare", "--mount", "--propagation", "private",
                 "bash", "-c", script, "dockerd",
                 "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                 "-H", f"unix://{self.socket}", "--pidfile", str(self.root / "docker.pid"),
                 "--cgroup-parent", f"/{self.cgroup}", "--default-address-pool", ENGINE_POOL,
                 "--bridge=none", "--iptables=false", "--ip6tables=false"],
                # docs/swarm.md: an engine with its images and no registry.
                env={**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            poll(self._answers, f"{self.name}'s engine answering", ENGINE_START, explain=self.log_tail)
        except AssertionError as exc:
            pytest.fail(str(exc), pytrace=False)

    def _answers(self) -> bool:
        if self.dockerd.poll() is not None:
            raise AssertionError(f"dockerd exited with code {self.dockerd.returncode}\n{self.log_tail()}")
        try:
            return self.docker("info", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def docker(self, *args: str, check: bool = True, timeout: float = 120,
               env: dict[str, str] | None = None, stdin=None) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", "-H", f"unix://{self.socket}", *args], capture_output=True,
                                text=stdin is None, timeout=timeout, stdin=stdin,
                                env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name}: docker {' '.join(args)}: {result.stderr}\n{self.log_tail()}")
        return result

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{self.name}'s dockerd log ends:\n" + "\n".join(text.splitlines()[-lines:])

    # --- a machine's death ---------------------------------------------
    def pids(self) -> set[int]:
        """Every process of this machine: in its network namespace
        (engine, containerd, shims, host-network tasks) or in its cgroup
        parent (tasks with a network namespace of their own)."""
        pids = namespace_pids(self.netns_path)
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if f"/{self.cgroup}/" in (proc / "cgroup").read_text():
                        pids.add(int(proc.name))
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue
        return pids

    def kill(self) -> tuple[float, int]:
        """Unplugged and killed -9, every process at once: when the link
        was down for sure (monotonic), and how many processes."""
        run("ip", "-n", self.cluster.netns, "link", "set", self.link, "down")
        unplugged = time.monotonic()
        killed = 0
        for _ in range(5):  # a dying shim may still start a child
            killed += len(kill_processes(self.pids()))
            time.sleep(0.2)
        if self.dockerd is not None:
            self.dockerd.wait(timeout=30)
        return unplugged, killed

    def plug(self) -> None:
        run("ip", "-n", self.cluster.netns, "link", "set", self.link, "up")

    # --- teardown ------------------------------------------------------
    def stop(self) -> list[str]:
        problems = []
        if self.dockerd is not None and self.dockerd.poll() is None:
            self.docker("swarm", "leave", "--force", check=False, timeout=60)
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: dockerd ignored SIGTERM for 30 s: killed")
        killed = kill_processes(self.pids())
        if killed:
            problems.append(f"{self.name}: killed processes left behind: {killed}")
        return problems

    def cgroups(self) -> list[Path]:
        """The cgroup parent's folders: one per controller (v1), or one."""
        top = Path("/sys/fs/cgroup")
        return [p for p in (top / self.cgroup, *top.glob(f"*/{self.cgroup}")) if p.is_dir()]

    def remove(self) -> list[str]:
        """Its cgroups (a killed engine leaves its containers' behind) and
        its namespace."""
        problems = []
        for folder in self.cgroups():
            for sub in sorted([p for p in folder.rglob("*") if p.is_dir()], key=lambda p: len(p.parts),
                              reverse=True) + [folder]:
                try:
                    sub.rmdir()
                except OSError as exc:
                    problems.append(f"{self.name}: cgroup {sub}: {exc.strerror}")
        run("ip", "netns", "del", self.name, check=False)
        if Path(self.netns_path).exists():
            problems.append(f"network namespace {self.name} is still there")
        return problems


class Cluster:
    """The balancer's namespace with its bridge, and the machines on it."""

    def __init__(self):
        self.prefix = f"fbx-{uuid.uuid4().hex[:6]}"
        self.netns = f"{self.prefix}-lb"
        self.netns_path = f"/run/netns/{self.netns}"
        # Short: the engines' unix sockets live under it (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="flaskbox-nodes-", dir="/tmp"))
        self.machines = [Machine(self, i) for i in range(1, NODES + 1)]
        self.helpers: list[subprocess.Popen] = []
        self.setup_seconds = 0.0

    @property
    def manager(self) -> Machine:
        return self.machines[0]

    def start(self, image: str) -> None:
        for tool in ("ip", "nsenter", "unshare", "dockerd", NGINX, PROMETHEUS):
            if not shutil.which(tool):
                pytest.fail(f"{tool} is missing: tests/run.sh installs it", pytrace=False)
        self.root.chmod(0o755)  # nginx's workers (nobody) use its lb/ folder
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        run("ip", "-n", self.netns, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.netns, "addr", "add", f"{BALANCER_ADDRESS}/24", "dev", "br0")
        run("ip", "-n", self.netns, "link", "set", "br0", "up")
        for machine in self.machines:
            machine.plumb()
        failed: list[BaseException] = []

        def start(machine: Machine) -> None:
            try:
                machine.start()
            except BaseException as exc:  # noqa: BLE001 (pytest.fail's too: raised below)
                failed.append(exc)
        threads = [threading.Thread(target=start, args=(m,)) for m in self.machines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(ENGINE_START + 30)
        if failed:
            raise failed[0]
        self.load(image)
        self.manager.docker("swarm", "init", "--advertise-addr", self.manager.address,
                            "--default-addr-pool", SWARM_POOL, "--default-addr-pool-mask-length", "24")
        token = self.manager.docker("swarm", "join-token", "-q", "manager").stdout.strip()
        for machine in self.machines[1:]:
            machine.docker("swarm", "join", "--token", token, "--advertise-addr", machine.address,
                           f"{self.manager.address}:2377")
        for machine in self.machines:
            machine.node_id = machine.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()

    def load(self, image: str) -> None:
        """docker save once, docker load into every engine."""
        archive = self.root / "image.tar"
        run("docker", "save", "-o", str(archive), image, timeout=300)
        for machine in self.machines:
            with open(archive, "rb") as tar:
                machine.docker("load", stdin=tar, timeout=300)
        archive.unlink()

    def spawn(self, name: str, *command: str) -> subprocess.Popen:
        """A process of the test's in the balancer's namespace."""
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(["nsenter", f"--net={self.netns_path}", *command], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.helpers.append(process)
        return process

    def teardown(self) -> list[str]:
        problems: list[str] = []
        live = [m for m in self.machines if m.dockerd is not None and m.dockerd.poll() is None]
        if live:
            for stack in live[0].docker("stack", "ls", "--format", "{{.Name}}", check=False).stdout.split():
                live[0].docker("stack", "rm", stack, check=False)
            live[0].docker("service", "rm", "flaskbox-prometheus", check=False)
            for machine in live:
                try:
                    poll(lambda m=machine: m.docker("ps", "-aq", check=False).stdout.strip() == "",
                         f"{machine.name}'s containers gone", 60)
                except AssertionError as exc:
                    problems.append(str(exc))
        for process in self.helpers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)
        for machine in self.machines:
            problems += machine.stop()
        left = kill_processes(namespace_pids(self.netns_path))
        if left:
            problems.append(f"killed processes left in the balancer's namespace: {left}")
        for machine in self.machines:
            problems += machine.remove()
        run("ip", "netns", "del", self.netns, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        if Path(self.netns_path).exists():
            problems.append(f"network namespace {self.netns} is still there")
        if self.root.exists():
            problems.append(f"{self.root} is still there")
        return problems


class Service:
    """A stack's service as the swarm reports it."""

    def __init__(self, cluster: Cluster, name: str):
        self.cluster, self.name = cluster, name

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.cluster.manager.docker(*args, **kwargs)

    def tasks(self) -> list[dict]:
        """Tasks meant to run, as `docker service ps` lists them, with the
        node ID of each (the engines share this machine's host name)."""
        out = self.docker("service", "ps", self.name, "--no-trunc", "--format", "{{.ID}}",
                          "--filter", "desired-state=running").stdout.split()
        if not out:
            return []
        return json.loads(self.docker("inspect", "--type", "task", *out).stdout)

    def running(self, image: str | None = None) -> list[dict]:
        """Tasks running on nodes that are up (the swarm keeps a lost
        node's tasks as they were until it hears from it again)."""
        nodes = self.docker("node", "ls", "--format", "{{.ID}} {{.Status}}").stdout.split("\n")
        up = {line.split()[0] for line in nodes if line.endswith(" Ready")}
        return [t for t in self.tasks() if t["Status"]["State"] == "running" and t["NodeID"] in up
                and (image is None or t["Spec"]["ContainerSpec"]["Image"] == image)]

    def explain(self) -> str:
        tasks = self.docker("service", "ps", self.name, "--no-trunc", check=False).stdout
        nodes = self.docker("node", "ls", check=False).stdout
        return f"{tasks}\n{nodes}\n{self.cluster.manager.log_tail()}"

    def wait_spread(self, nodes: list[Machine], image: str | None = None) -> list[dict]:
        """Exactly one running task on each of nodes, none elsewhere."""
        wanted = sorted(m.node_id for m in nodes)

        def spread():
            running = self.running(image)
            return running if sorted(t["NodeID"] for t in running) == wanted else None
        return poll(spread, f"one task of {self.name} on each of {[m.name for m in nodes]}", TASKS_READY,
                    explain=self.explain)

    def update_status(self) -> dict:
        return json.loads(self.docker("service", "inspect", self.name).stdout)[0].get("UpdateStatus") or {}


def deploy(cluster: Cluster, file: Path, name: str, image: str, **env: str) -> None:
    # As docs/swarm.md says, with the image already on every node.
    cluster.manager.docker("stack", "deploy", "--resolve-image", "never", "-c", str(file), name,
                           env={"IMAGE": image, **env})


class Prometheus:
    """Prometheus in the balancer's namespace with docs/swarm.md's scrape
    config for stack.host.yaml, asking the first node's engine."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        config = yaml.safe_load(docs_block("yaml", "role: nodes"))
        job = config["scrape_configs"][0]
        job["dockerswarm_sd_configs"][0]["host"] = f"unix://{cluster.manager.socket}"
        job["dockerswarm_sd_configs"][0]["refresh_interval"] = "2s"
        config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
        path = cluster.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        cluster.spawn("prometheus", PROMETHEUS, f"--config.file={path}",
                      f"--storage.tsdb.path={cluster.root / 'prometheus'}",
                      "--web.listen-address=127.0.0.1:9090", "--log.level=warn")

    def api(self, path: str, **query: str) -> dict:
        url = f"http://127.0.0.1:9090/api/v1/{path}?{urllib.parse.urlencode(query)}"

        def fetch():
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)["data"]
        return in_netns(self.cluster.netns_path, fetch)

    def targets_up(self, addresses: list[str]):
        """The active targets, when they are exactly addresses, all up."""
        try:
            active = self.api("targets", state="active")["activeTargets"]
        except OSError:
            return None
        found = sorted(t["labels"]["instance"] for t in active)
        return active if found == sorted(addresses) and all(t["health"] == "up" for t in active) else None


@pytest.fixture(scope="module")
def cluster(image):
    started = time.monotonic()
    cluster = Cluster()
    try:
        cluster.start(image)
        deploy(cluster, HOST_STACK, STACK, image, PORT=str(PORT))
        service = Service(cluster, f"{STACK}_web")
        service.wait_spread(cluster.machines, image)
        balancer(cluster)
        cluster.setup_seconds = time.monotonic() - started
        cluster.image = image
        cluster.service = service
        yield cluster
    finally:
        problems = cluster.teardown()
        # Nothing of the swarm's may reach this machine's own network.
        assert run("ip", "link", "show", "docker_gwbridge", check=False).returncode != 0, \
            "docker_gwbridge exists outside the namespaces"
        assert not problems, problems


def balancer(cluster: Cluster) -> None:
    """Debian's nginx with docs/swarm.md's configuration, listing the
    three nodes, on port 80 of the balancer's namespace."""
    site = docs_block("nginx", "upstream flaskbox")
    servers = "".join(f"    server {m.address}:{PORT} max_fails=1 fail_timeout=5s;\n"
                      for m in cluster.machines)
    site, count = re.subn(r"(?:    server \S+:8080 [^\n]*\n)+", servers, site)
    assert count == 1, "docs/swarm.md's upstream block lists no servers on port 8080"
    prefix = cluster.root / "lb"
    prefix.mkdir()
    temp = " ".join(f"{kind}_temp_path {prefix}/{kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(
        f"worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        f"events {{}}\nhttp {{\n access_log off;\n {temp}\n{site}\n}}\n")
    process = cluster.spawn("nginx", NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                            "-g", "daemon off;")

    def answers():
        if process.poll() is not None:
            raise AssertionError((cluster.root / "nginx.log").read_text() +
                                 (prefix / "error.log").read_text())
        with Traffic(cluster.netns_path, 80, seconds=2) as probe:
            time.sleep(0.5)
        return probe.results and all(r.status == 200 for r in probe.results)
    poll(answers, "the load balancer answering", 30)


def balancer_log(cluster: Cluster, lines: int = 20) -> str:
    """The balancer's error log's last lines: which node it waited on."""
    log = cluster.root / "lb" / "error.log"
    return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no balancer log)"


def served_since(traffic: Traffic, moment: float, what: str) -> None:
    poll(lambda: len([r for r in traffic.since(moment) if r.status == 200]) >= AFTER,
         f"{AFTER} requests answered {what}", 60, interval=0.1, explain=traffic.summary)


def no_failures(traffic: Traffic, service: Service) -> None:
    failures = traffic.failures()
    assert not failures, f"{traffic.summary()}; first failures: {failures[:5]}\n{service.explain()}"


def test_prometheus_finds_each_task_once_on_the_host_network(cluster):
    """docs/swarm.md's config for stack.host.yaml: one target per node, the
    task's METRICS_PORT at the node's address, each up."""
    prometheus = Prometheus(cluster)
    addresses = [f"{m.address}:{METRICS_PORT}" for m in cluster.machines]
    poll(lambda: prometheus.targets_up(addresses), "Prometheus scraping the three tasks", 60,
         explain=lambda: json.dumps(prometheus.api("targets"), indent=1)[:3000])
    # Each answers with flaskbox's own series.
    def scraped():
        query = "count by (instance) (flaskbox_http_requests_total)"
        result = prometheus.api("query", query=query)["result"]
        return sorted(r["metric"]["instance"] for r in result) == sorted(addresses)
    poll(scraped, "flaskbox's series from each node", 30)
    cluster.prometheus = prometheus


def test_the_files_cpu_limit_gives_what_the_docs_say(cluster):
    """The stack's 1-CPU limit, as a task's own start log reports the pool
    it sized from it, and as docs/swarm.md quotes that line."""
    machine = cluster.manager
    task = machine.docker("ps", "-q", "--filter",
                          f"label=com.docker.swarm.service.name={cluster.service.name}").stdout.split()[0]
    line = "1 CPU(s) available: uWSGI 2 processes x 16 threads, nginx 1 workers"
    assert line in machine.docker("logs", task).stderr
    assert line in DOCS.read_text()


def test_rolling_update_keeps_one_task_per_node_and_loses_no_request(cluster, figure):
    figure("3 engines, swarm of 3 managers, image loads, deploy and load balancer",
           f"{cluster.setup_seconds:.0f} s")
    service = cluster.service
    new = "flaskbox-nodes:next"
    for machine in cluster.machines:
        container = machine.docker("create", cluster.image).stdout.strip()
        machine.docker("commit", "--change", "LABEL org.flaskbox.test=next", container, new)
        machine.docker("rm", container)
    before = service.update_status()
    with Traffic(cluster.netns_path, 80) as traffic:
        served_since(traffic, traffic.started, "before the update")
        began = time.monotonic()
        deploy(cluster, HOST_STACK, STACK, new, PORT=str(PORT))

        def finished():
            status = service.update_status()
            if status.get("StartedAt") == before.get("StartedAt"):
                return None
            if status.get("State") in {"paused", "rollback_started", "rollback_completed"}:
                raise AssertionError(f"the update failed: {status}\n{service.explain()}")
            return status if status.get("State") == "completed" else None
        poll(finished, "the update completed", UPDATE_DONE, explain=service.explain)
        took = time.monotonic() - began
        service.wait_spread(cluster.machines, new)
        served_since(traffic, time.monotonic(), "after the update")
    no_failures(traffic, service)
    cluster.image = new
    figure("rolling update of 3 nodes behind the load balancer",
           f"{took:.0f} s, {len(traffic.results)} requests, {len(traffic.failures())} failed")


def test_drained_node_stops_its_task_and_gets_it_back(cluster, figure):
    service, drained = cluster.service, cluster.machines[1]
    others = [m for m in cluster.machines if m is not drained]
    with Traffic(cluster.netns_path, 80) as traffic:
        served_since(traffic, traffic.started, "before the drain")
        began = time.monotonic()
        service.docker("node", "update", "--availability", "drain", drained.node_id)
        service.wait_spread(others)
        # Stopped for good: drained in the image's ordered stop, and gone.
        poll(lambda: not drained.docker("ps", "-q", "--filter",
                                        f"label=com.docker.swarm.service.name={service.name}").stdout.strip(),
             "the drained node's task gone", 60, explain=service.explain)
        gone = time.monotonic() - began
        served_since(traffic, time.monotonic(), "with the node drained")
        back = time.monotonic()
        service.docker("node", "update", "--availability", "active", drained.node_id)
        service.wait_spread(cluster.machines)
        returned = time.monotonic() - back
        served_since(traffic, time.monotonic(), "with the node back")
    no_failures(traffic, service)
    figure("drain: the node's task stopped, then back on --availability active",
           f"{gone:.0f} s, then {returned:.0f} s; {len(traffic.results)} requests, "
           f"{len(traffic.failures())} failed")


def test_killed_node_loses_at_most_its_requests_in_flight(cluster, figure):
    service, victim = cluster.service, cluster.machines[2]
    others = [m for m in cluster.machines if m is not victim]
    with Traffic(cluster.netns_path, 80) as traffic:
        served_since(traffic, traffic.started, "before the kill")
        # The node is gone once its link is: a request the balancer sent it
        # while `ip` was still running may have been taken and never answered.
        killed_at, processes = victim.kill()
        served_since(traffic, killed_at, "after the kill")

        def marked_down():
            nodes = service.docker("node", "ls", "--format", "{{.ID}} {{.Status}}").stdout.split("\n")
            return f"{victim.node_id} Down" in nodes
        poll(marked_down, "the swarm marking the node down", NODE_DOWN, explain=service.explain)
        down = time.monotonic() - killed_at
        service.wait_spread(others)
        # The machine comes back with its disks: a new engine process,
        # fresh /run/containerd, the same data root.
        victim.plug()
        plugged_at = time.monotonic()
        victim.start()
        service.wait_spread(cluster.machines)
        returned = time.monotonic() - killed_at
        served_since(traffic, time.monotonic(), "with the node back")
    after = traffic.since(killed_at)
    slowest = max(r.took for r in after if r.status == 200)
    # Only requests already sent when the node died may fail: those it was
    # answering, which the load balancer waited for in vain.
    lost = [r for r in traffic.failures() if r.sent < killed_at]
    late = [r for r in traffic.failures() if r.sent >= killed_at]
    assert not late, (f"{service.explain()}\n{balancer_log(cluster)}\n{traffic.summary()}; "
                      f"unplugged at {killed_at:.3f}, plugged again at {plugged_at:.3f}; failed after:")
    assert len(lost) <= 5, f"{traffic.summary()}; {lost}"
    figure(f"a node killed -9 (its {processes} processes, and its link)",
           f"{len(traffic.results)} requests, {len(lost)} lost (in flight on it); new requests answered "
           f"within {slowest:.1f} s; marked down after {down:.0f} s; "
           f"back with its task after {returned:.0f} s")


def test_prometheus_still_finds_each_task_once(cluster):
    addresses = [f"{m.address}:{METRICS_PORT}" for m in cluster.machines]
    poll(lambda: cluster.prometheus.targets_up(addresses), "Prometheus scraping the three tasks again", 60)


def test_prometheus_finds_each_ingress_task_once(cluster):
    """stack.yaml, three replicas, with docs/swarm.md's `tasks` config in a
    Prometheus on the stack's network (Debian's prometheus binary, run in
    the image under test as a swarm service on the first node): one target
    per task, on every node, at its address on the stack's network, each
    up. The routing mesh itself carries no traffic here (no IPVS)."""
    name = "flaskbox-ingress"
    deploy(cluster, INGRESS_STACK, name, cluster.image, PORT=str(INGRESS_PORT), REPLICAS=str(NODES))
    service = Service(cluster, f"{name}_web")
    tasks = service.wait_spread(cluster.machines)
    config = yaml.safe_load(docs_block("yaml", "role: tasks"))
    config["scrape_configs"][0]["dockerswarm_sd_configs"][0]["refresh_interval"] = "2s"
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    path = cluster.root / "prometheus-tasks.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    manager = cluster.manager
    manager.docker("service", "create", "--detach", "--name", "flaskbox-prometheus",
                   "--network", f"{name}_default", "--constraint", f"node.id=={manager.node_id}",
                   "--user", "root", "--mount", "type=tmpfs,dst=/data",
                   "--mount", f"type=bind,src={PROMETHEUS},dst=/usr/local/bin/prometheus,ro",
                   "--mount", f"type=bind,src={manager.socket},dst=/var/run/docker.sock",
                   "--mount", f"type=bind,src={path},dst=/etc/prometheus.yml,ro",
                   "--entrypoint", "/usr/local/bin/prometheus", "--no-healthcheck", cluster.image,
                   "--config.file=/etc/prometheus.yml", "--storage.tsdb.path=/data",
                   "--web.listen-address=127.0.0.1:9090", "--log.level=warn")
    addresses = {}
    for task in tasks:
        for attachment in task["NetworksAttachments"]:
            if attachment["Network"]["Spec"]["Name"] == f"{name}_default":
                addresses[task["ID"]] = attachment["Addresses"][0].split("/")[0] + f":{METRICS_PORT}"
    assert len(addresses) == NODES

    def container():
        found = manager.docker("ps", "-q", "--filter", "status=running", "--filter",
                               "label=com.docker.swarm.service.name=flaskbox-prometheus").stdout.split()
        return found[0] if found else None
    prometheus = poll(container, "Prometheus's task running", TASKS_READY,
                      explain=lambda: manager.docker("service", "ps", "--no-trunc", "flaskbox-prometheus",
                                                     check=False).stdout)
    probe = ("import json, urllib.request\n"
             "url = 'http://127.0.0.1:9090/api/v1/targets?state=active'\n"
             "r = json.load(urllib.request.urlopen(url))\n"
             "print(json.dumps([(t['labels']['instance'],"
             " t['discoveredLabels']['__meta_dockerswarm_task_id'], t['health'])"
             " for t in r['data']['activeTargets']]))\n")

    def found():
        result = manager.docker("exec", prometheus, "python3", "-c", probe, check=False)
        if result.returncode != 0:
            return None
        targets = json.loads(result.stdout)
        by_task = {task: instance for instance, task, _ in targets}
        healthy = all(health == "up" for _, _, health in targets)
        return targets if len(targets) == NODES and by_task == addresses and healthy else None
    poll(found, "one target per task, each up", 60,
         explain=lambda: manager.docker("exec", prometheus, "python3", "-c", probe, check=False).stdout)
