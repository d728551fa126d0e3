"""The three-node swarm test_swarm_nodes.py runs on: three machines, each a
Docker engine (engines.py) with its own network namespace (its host
network, 198.18.0.1-3), mount namespace and cgroup parent, on a bridge in a
fourth namespace (198.18.0.254) that holds the test's own processes; made
three managers of one swarm; and a service as the swarm reports it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from engines import (
    ENGINE_START,
    Engine,
    add_netns,
    delete_netns,
    kill_processes,
    namespace_pids,
    poll,
    require,
    run,
)

NODES = 3
SUBNET = "198.18.0"
BALANCER_ADDRESS = f"{SUBNET}.254"
# The swarm's overlay networks and each engine's own (docker_gwbridge).
SWARM_POOL = "198.18.128.0/18"
ENGINE_POOL = "base=198.18.192.0/18,size=24"
# Bound on a service's tasks spreading, in seconds.
TASKS_READY = 120


class Machine(Engine):
    """One node: a network namespace linked to the balancer's bridge, and a
    Docker engine in it with everything of its own. kill() is the machine
    dying; start() again is it coming back with its disks."""

    def __init__(self, cluster: Cluster, index: int):
        name = f"{cluster.prefix}-n{index}"
        super().__init__(name, cluster.root / f"n{index}", own_mounts=True, cgroup_parent=name,
                         address_pool=ENGINE_POOL)
        self.cluster, self.index = cluster, index
        self.address = f"{SUBNET}.{index}"
        self.link = f"v{index}"
        self.node_id = ""

    def plumb(self) -> None:
        add_netns(self.name)
        lb = self.cluster.netns
        # Both ends made inside namespaces: nothing in this machine's own.
        run("ip", "-n", lb, "link", "add", self.link, "type", "veth",
            "peer", "name", "eth0", "netns", self.name)
        run("ip", "-n", lb, "link", "set", self.link, "master", "br0", "up")
        run("ip", "-n", self.name, "addr", "add", f"{self.address}/24", "dev", "eth0")
        run("ip", "-n", self.name, "link", "set", "eth0", "up")
        self.tune_netns()

    # --- a machine's death ---------------------------------------------
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

    def remove(self) -> list[str]:
        """Its cgroups (a killed engine leaves its containers' behind) and
        its namespace."""
        return self.remove_cgroups() + delete_netns(self.name)


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
        require("ip", "nsenter", "unshare", "dockerd")
        self.root.chmod(0o755)  # nginx's workers (nobody) use its lb/ folder
        add_netns(self.netns)
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
        live = [m for m in self.machines if m.running()]
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
        problems += delete_netns(self.netns)
        shutil.rmtree(self.root, ignore_errors=True)
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
