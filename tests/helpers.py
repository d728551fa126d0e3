"""What the tests and the benchmark share besides the containers
themselves (containers.py): the docker CLI, free ports, unique names,
image builds, and TLS pairs made with openssl.

Every container runs with --network host and its own free high PORT, and all
traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def share_with_container(*paths: Path) -> None:
    """Make host files readable by the image's non-root user: directories
    755 and files 644, recursively (pytest's tmp dirs are 700)."""
    for root in paths:
        for path in [root, *(root.rglob("*") if root.is_dir() else [])]:
            path.chmod(0o755 if path.is_dir() else 0o644)


# A busy loop, as a shared host's other tenants run (`python3 -c BUSY_LOOP`):
# it ends with the process that started it, so a run killed before its
# cleanup leaves no CPU burning behind it.
BUSY_LOOP = ("import os\nparent = os.getppid()\n"
             "while os.getppid() == parent:\n    for _ in range(100000): pass\n")


class Neighbours:
    """A shared host's other tenants while a test or a bench runs: `loops`
    busy loops on the host (each ends with this process, should it be
    killed before this cleans up), and with `containers` (a
    ContainerFactory) a busy container beside, in a cgroup of its own:
    `processes` busy processes, docker's `docker_args` (a quota) added."""

    def __init__(self, loops: int = 2, containers=None, processes: int = 4, image: str | None = None,
                 docker_args: tuple[str, ...] = ()):
        self.count, self.containers, self.processes = loops, containers, processes
        self.image, self.docker_args = image, docker_args
        self.loops: list = []
        self.container = None

    def __enter__(self):
        self.loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.count)]
        if self.containers is not None:
            busy = (f"import os\nfor _ in range({self.processes - 1}):\n"
                    "    if os.fork() == 0:\n        break\nwhile True:\n    pass\n")
            self.container = self.containers.run("-c", busy, image=self.image, set_port=False,
                                                 docker_args=("--entrypoint", "python3", *self.docker_args))
        return self

    def __exit__(self, *exc):
        for loop in self.loops:
            loop.kill()
            loop.wait()
        if self.container is not None:
            self.container.remove()


def app_folder(parent: Path, source: str) -> Path:
    """parent/app holding app.py with `source`, readable in the container:
    a test's one-module app, for `-v folder:/app`."""
    root = parent / "app"
    root.mkdir()
    (root / "app.py").write_text(source)
    share_with_container(root)
    return root


# Where the TLS tests mount their certificate and key (TLS_CERT, TLS_KEY).
CERT, KEY = "/etc/tls/tls.crt", "/etc/tls/tls.key"


def make_pair(directory: Path, name: str = "tls") -> None:
    """A self-signed certificate and its key, written under temporary names
    and moved into place, as cert-manager and certbot replace them."""
    cert, key = directory / f".{name}.crt.new", directory / f".{name}.key.new"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
               "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    share_with_container(cert, key)
    os.replace(key, directory / f"{name}.key")
    os.replace(cert, directory / f"{name}.crt")


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run `docker ARGS...`, capturing text output."""
    return subprocess.run(
        ["docker", *args], check=check, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def key_value_flags(flag: str, values: dict[str, str] | None) -> list[str]:
    """`flag KEY=value` for each item: docker's -e and --build-arg."""
    return [part for key, value in (values or {}).items() for part in (flag, f"{key}={value}")]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port nobody uses right now, never the same twice in one run,
    from just below the kernel's ephemeral range: a port from inside it
    (which bind(0) gives) can become the local port of one of the thousands
    of outgoing connections the load tests open, between this check and the
    container's bind (seen once: nginx's "Address already in use").
    pytest-xdist's workers each draw from their own share of that range, so
    that two workers never hand out the same port at once."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = range(max(1024, low - 12000), low)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    if worker.startswith("gw"):
        candidates = candidates[int(worker[2:])::int(os.environ["PYTEST_XDIST_WORKER_COUNT"])]
    while True:
        port = random.choice(candidates)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def unique_name(prefix: str = "flaskbox-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def build_image(context: Path, tag: str, build_args: dict[str, str] | None = None, check: bool = True,
                timeout: float = 900, target: str | None = None) -> subprocess.CompletedProcess:
    """Classic-builder `docker build`, host network (no bridge exists here).
    --force-rm: a failed step leaves no stopped container behind."""
    cmd = ["build", "--network", "host", "--force-rm", "-t", tag, *(["--target", target] if target else [])]
    cmd += key_value_flags("--build-arg", build_args)
    cmd.append(str(context))
    result = docker(*cmd, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker build failed:\n{result.stdout}\n{result.stderr}")
    return result


def pins(requirements: Path, python: str) -> dict[str, str]:
    """name -> version of a requirements file's `name==version` lines whose
    `python_version` marker, if any, holds for `python` ("3.14")."""
    found = {}
    wanted = tuple(int(part) for part in python.split("."))
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        requirement, _, marker = line.partition(";")
        name, _, version = requirement.partition("==")
        if not version:
            continue
        if marker:
            op, bound = re.fullmatch(r'\s*python_version\s*([<>=!]=?)\s*"([\d.]+)"\s*', marker).groups()
            bound = tuple(int(part) for part in bound.split("."))
            holds = {"<": wanted < bound, "<=": wanted <= bound, ">": wanted > bound, ">=": wanted >= bound,
                     "==": wanted == bound, "!=": wanted != bound}[op]
            if not holds:
                continue
        found[name.strip()] = version.strip()
    return found
