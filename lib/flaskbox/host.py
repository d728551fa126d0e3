"""What this container may use, read from the kernel's files.

Every default that depends on the machine comes from here: CPUs from the
cgroup quota (not the host's cores), memory from the cgroup limit, the size
and kind of the file system RUNTIME_DIR is on, kernel limits on listen queues
and privileged ports. `root` moves every path, so tests can hand it a fake
/sys and /proc.
"""

from __future__ import annotations

import math
import os
import resource
from collections import namedtuple
from pathlib import Path

# cgroup v1 reports "no limit" as a huge page-aligned number.
UNLIMITED_V1 = 1 << 60
# Left by the Dockerfile when nginx accepts `max_headers`.
NGINX_MAX_HEADERS_MARK = "/etc/flaskbox/nginx-max-headers"


def descriptors() -> dict[int, str]:
    """This process's open descriptors, each with what it points to
    (/proc/self/fd: "pipe:[inode]", "socket:[inode]", a path); one closed
    meanwhile is left out."""
    found = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in names:
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except (OSError, ValueError):
            continue
    return found


def _address(hex_address: str) -> str:
    """/proc/net/tcp's address (32-bit words printed in the CPU's byte
    order) as it is written: 0100007F is 127.0.0.1 on x86 and arm64."""
    import ipaddress
    import sys

    raw = bytes.fromhex(hex_address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(raw)
    return f"[{address}]" if address.version == 6 else str(address)


# A mount: its point, its file system's type and its size in bytes. A
# namedtuple, not a dataclass: the arbiter (PID 1) imports this module.
Mount = namedtuple("Mount", ("point", "fstype", "size"))


class Host:
    def __init__(self, root: str | Path = "/"):
        self.root = Path(root)

    @property
    def app_dir(self) -> Path:
        """Where the app lives (/app)."""
        return self.root / "app"

    def _read(self, path: str) -> str | None:
        try:
            return (self.root / path.lstrip("/")).read_text().strip()
        except OSError:
            return None

    # --- CPUs ------------------------------------------------------------
    def cpus_allowed(self) -> int:
        """CPUs this process may run on (taskset, --cpuset-cpus)."""
        return max(1, len(os.sched_getaffinity(0)))

    def cpu_quota(self) -> float | None:
        """The CFS quota in CPUs (--cpus, a pod's CPU limit), or None."""
        v2 = self._read("/sys/fs/cgroup/cpu.max")
        if v2 is not None:
            quota, _, period = v2.partition(" ")
        else:
            quota = self._read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") or ""
            period = self._read("/sys/fs/cgroup/cpu/cpu.cfs_period_us") or ""
        # "max" (v2) or -1 (v1) means no quota.
        if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
            return int(quota) / int(period)
        return None

    def cpu_capacity(self) -> float:
        """The CPUs' worth this container may use: its quota, else the CPUs
        it may run on."""
        quota = self.cpu_quota()
        allowed = float(self.cpus_allowed())
        return allowed if quota is None else min(quota, allowed)

    def cpus(self) -> int:
        """The quota rounded up, never more than the CPUs allowed."""
        return max(1, math.ceil(self.cpu_capacity()))

    # --- memory ----------------------------------------------------------
    def memory_limit(self) -> int | None:
        """The cgroup's memory limit in bytes (--memory), or None."""
        value = self._read("/sys/fs/cgroup/memory.max")
        if value is None:
            value = self._read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        if value is None or not value.isdigit() or int(value) >= UNLIMITED_V1:
            return None
        return int(value)

    def oom_kills(self) -> int | None:
        """Processes of this container the kernel's OOM killer has ended so
        far (cgroup v2's memory.events, v1's memory.oom_control), or None."""
        for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
            text = self._read(path)
            if text is None:
                continue
            for line in text.splitlines():
                name, _, count = line.partition(" ")
                if name == "oom_kill" and count.strip().isdigit():
                    return int(count)
        return None

    # --- processes ---------------------------------------------------------
    def pids_limit(self) -> int | None:
        """The cgroup's limit on processes and threads (--pids-limit), or None."""
        for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
            value = self._read(path)
            if value is not None:
                return int(value) if value.isdigit() else None
        return None

    def pids_current(self) -> int | None:
        for path in ("/sys/fs/cgroup/pids.current", "/sys/fs/cgroup/pids/pids.current"):
            value = self._read(path)
            if value is not None and value.isdigit():
                return int(value)
        return None

    # --- file systems ----------------------------------------------------
    def mount_of(self, path: str) -> Mount | None:
        """The mount holding `path` (or its nearest existing parent)."""
        table = self._read("/proc/self/mountinfo")
        if table is None:
            return None
        target = Path(path)
        while not (self.root / str(target).lstrip("/")).exists() and target != target.parent:
            target = target.parent
        best: tuple[str, str] | None = None
        for line in table.splitlines():
            # id parent major:minor root mount-point options ... - fstype source super-options
            fields, _, tail = line.partition(" - ")
            parts = fields.split()
            if len(parts) < 5 or not tail:
                continue
            point = parts[4].replace("\\040", " ")
            inside = str(target) == point or str(target).startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) >= len(best[0])):
                best = (point, tail.split()[0])
        if best is None:
            return None
        try:
            stat = os.statvfs(self.root / best[0].lstrip("/"))
        except OSError:
            return None
        return Mount(point=best[0], fstype=best[1], size=stat.f_blocks * stat.f_frsize)

    # --- kernel limits ---------------------------------------------------
    def somaxconn(self) -> int | None:
        """The kernel's cap on a listen backlog (net.core.somaxconn)."""
        value = self._read("/proc/sys/net/core/somaxconn")
        return int(value) if value and value.isdigit() else None

    def listeners(self, port: int) -> list[str]:
        """The addresses something listens on at TCP `port` in this network
        namespace (the host's, with --network host): another container,
        a program of the host. From the kernel's tables, as `ss -tln` reads them."""
        found = []
        for table in ("tcp", "tcp6"):
            for line in (self._read(f"/proc/net/{table}") or "").splitlines()[1:]:
                fields = line.split()
                if len(fields) < 4 or fields[3] != "0A":  # TCP_LISTEN
                    continue
                address, _, hex_port = fields[1].rpartition(":")
                if int(hex_port, 16) == port:
                    found.append(f"{_address(address)}:{port}")
        return found

    def host_network(self) -> bool:
        """Whether this is the host's own network namespace (--network host,
        hostNetwork): it has a network device of the machine (a NIC, with a
        `device` link). A container's network has only virtual ones (veth,
        macvlan) and loopback."""
        net = self.root / "sys/class/net"
        try:
            return any((interface / "device").exists() for interface in net.iterdir())
        except OSError:
            return False

    def unprivileged_port_start(self) -> int | None:
        """The lowest port a process without CAP_NET_BIND_SERVICE may bind."""
        value = self._read("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        return int(value) if value and value.isdigit() else None

    # --- the image -------------------------------------------------------
    def nginx_counts_headers(self) -> bool:
        """Whether this image's nginx has `max_headers` (upstream's, or
        Debian 12's backport): the Dockerfile probes it at build and leaves
        this file when it does."""
        return (self.root / NGINX_MAX_HEADERS_MARK.lstrip("/")).is_file()

    @staticmethod
    def open_files_limit() -> int:
        """The hard limit on open files: nginx raises its soft limit to it."""
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return hard if hard != resource.RLIM_INFINITY else 1 << 20
