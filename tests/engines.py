"""Docker engines of the tests' own, each in a network namespace of its own:
the harness test_swarm.py and test_swarm_nodes.py share.

An Engine has its own data root, exec root, socket, pid file and log under
one folder, no bridge and no iptables, and runs in a network namespace the
caller made with add_netns(). Optionally it also has a mount namespace of
its own (a fresh /run/containerd and /run/docker, gone with the engine), a
cgroup parent for its containers and a default address pool. stop() ends it
and every process it left behind; delete_netns() removes the namespace with
every interface in it. Beside it: poll(), entering a namespace from a
thread, and the processes a namespace or a cgroup holds."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

# Bound on an engine's start, in seconds.
ENGINE_START = 60

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


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


def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {result.stderr}")
    return result


def require(*tools: str) -> None:
    """Loud, never skipped: without these the module proves nothing."""
    for tool in tools:
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: tests/run.sh installs it", pytrace=False)


# --- network namespaces ------------------------------------------------------

def enter_netns(path: str) -> None:
    """Moves the calling thread (only) into the network namespace at path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


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


def add_netns(name: str) -> None:
    """A network namespace, /run/netns/NAME, with its loopback up."""
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")


def delete_netns(name: str) -> list[str]:
    """Every interface the namespace holds (docker_gwbridge, a veth, a
    bridge: deleting the namespace would drop them too; this says so
    explicitly), then the namespace. What is still there, if anything."""
    listing = run("ip", "-n", name, "-j", "link", "show", check=False)
    if listing.returncode == 0:
        for link in json.loads(listing.stdout or "[]"):
            if link["ifname"] != "lo":
                run("ip", "-n", name, "link", "del", link["ifname"], check=False)
    run("ip", "netns", "del", name, check=False)
    return [f"network namespace {name} is still there"] if Path(f"/run/netns/{name}").exists() else []


# --- processes ---------------------------------------------------------------

def namespace_pids(netns_path: str) -> set[int]:
    """Every process in the network namespace at netns_path."""
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


def cgroup_pids(parent: str) -> set[int]:
    """Every process under the cgroup parent /PARENT."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"/{parent}/" in (proc / "cgroup").read_text():
                    pids.add(int(proc.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return pids


def kill_processes(pids: set[int]) -> list[int]:
    """SIGKILL to each, one by one; those that were still there."""
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


# --- the engine --------------------------------------------------------------

class Engine:
    """A Docker engine in the network namespace NAME (made by the caller),
    with everything of its own under root. Everything it creates is under
    root, in the namespace or under its cgroup parent."""

    def __init__(self, name: str, root: Path, own_mounts: bool = False, cgroup_parent: str | None = None,
                 address_pool: str | None = None):
        self.name = name
        self.netns_path = f"/run/netns/{name}"
        # Short: the engine's unix sockets live under it (108-byte limit).
        self.root = root
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        self.own_mounts = own_mounts
        # Containers' cgroups (cgroupfs driver), apart from the host's.
        self.cgroup = cgroup_parent
        self.address_pool = address_pool
        self.dockerd: subprocess.Popen | None = None

    def tune_netns(self) -> None:
        """What docs/swarm.md asks of every node on the host network."""
        run("ip", "netns", "exec", self.name, "sysctl", "-q", "-w", "net.ipv4.tcp_migrate_req=1")

    # --- start ---------------------------------------------------------
    def start(self) -> None:
        """dockerd started, and answering (pytest.fail with its log if not);
        started again after a kill, it keeps its data root."""
        self.root.mkdir(exist_ok=True)
        command = ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                   "-H", f"unix://{self.socket}", "--pidfile", str(self.root / "docker.pid"),
                   *(["--cgroup-parent", f"/{self.cgroup}"] if self.cgroup else []),
                   *(["--default-address-pool", self.address_pool] if self.address_pool else []),
                   "--bridge=none", "--iptables=false", "--ip6tables=false"]
        if self.own_mounts:
            # A fresh /run/containerd (shim sockets) and /run/docker, gone
            # with the engine.
            script = ("mount -t tmpfs -o size=16m tmpfs /run/containerd && "
                      "mount -t tmpfs -o size=16m tmpfs /run/docker && exec dockerd \"$@\"")
            command = ["unshare", "--mount", "--propagation", "private", "bash", "-c", script, *command]
        with open(self.log, "ab") as log:
            self.dockerd = subprocess.Popen(
                ["nsenter", f"--net={self.netns_path}", *command],
                # What docs/swarm.md asks of a node that has its images
                # without a registry: no pull at a task's start.
                env={**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            poll(self._answers, f"{self.name}'s engine answering", ENGINE_START, explain=self.log_tail)
        except AssertionError as exc:
            pytest.fail(str(exc), pytrace=False)

    def running(self) -> bool:
        return self.dockerd is not None and self.dockerd.poll() is None

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

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{self.name}'s dockerd log ends:\n" + "\n".join(text.splitlines()[-lines:])

    def variant(self, image: str, tag: str, change: str) -> str:
        """image with one Dockerfile instruction changed, tagged tag, made
        in this engine (docker commit of a container never started)."""
        container = self.docker("create", image).stdout.strip()
        self.docker("commit", "--change", change, container, tag)
        self.docker("rm", container)
        return tag

    def pids(self) -> set[int]:
        """Every process of this engine: in its network namespace (engine,
        containerd, shims, host-network tasks) or under its cgroup parent
        (tasks with a network namespace of their own)."""
        return namespace_pids(self.netns_path) | (cgroup_pids(self.cgroup) if self.cgroup else set())

    # --- teardown ------------------------------------------------------
    def stop(self) -> list[str]:
        """The engine out of its swarm and stopped; then whatever it left
        (containerd, a shim, a task) killed, being ours, and its mounts
        under root undone. Returns what it had to force, or could not."""
        problems = []
        if self.running():
            self.docker("swarm", "leave", "--force", check=False, timeout=60)
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: dockerd ignored SIGTERM for 30 s: killed")
                self.dockerd.kill()
                self.dockerd.wait(timeout=30)
        killed = kill_processes(self.pids())
        if killed:
            problems.append(f"{self.name}: killed processes left behind: {killed}")
        return problems + self._unmount()

    def _unmount(self) -> list[str]:
        """The engine's network namespaces are bind mounts under its exec
        root; one (`default`) outlives the engine (in this machine's mount
        namespace, unless the engine had one of its own)."""
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if line.split()[1].startswith(f"{self.root}/")]
        failed = [m for m in sorted(mounts, reverse=True)
                  if subprocess.run(["umount", m], capture_output=True, timeout=30).returncode != 0]
        return [f"{self.name}: could not unmount {failed}"] if failed else []

    def remove_cgroups(self) -> list[str]:
        """The cgroup parent's folders (a killed engine leaves its
        containers' behind): one per controller (v1), or one."""
        if not self.cgroup:
            return []
        top = Path("/sys/fs/cgroup")
        problems = []
        for folder in [p for p in (top / self.cgroup, *top.glob(f"*/{self.cgroup}")) if p.is_dir()]:
            for sub in sorted([p for p in folder.rglob("*") if p.is_dir()], key=lambda p: len(p.parts),
                              reverse=True) + [folder]:
                try:
                    sub.rmdir()
                except OSError as exc:
                    problems.append(f"{self.name}: cgroup {sub}: {exc.strerror}")
        return problems
