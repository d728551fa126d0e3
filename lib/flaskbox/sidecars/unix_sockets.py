"""What the kernel knows of the unix sockets between nginx and uWSGI: the
sockets a process holds, the connections made to a folder's listeners, and
how many connections wait in a listener's backlog.

uWSGI's stats report `queue: 0` for a unix socket whatever waits in it (it
reads the backlog only for TCP, or through an ioctl stock kernels lack), so
the backlog is asked of the kernel here, as `ss -xl` does: a sock_diag
netlink dump of the listening unix sockets, which gives each one's
inode, path and waiting connections (UNIX_DIAG_RQLEN). The container may
share the host's network namespace, where other containers' listeners can
have the same path, so a listener counts only if the given process holds it.
Only the standard library: the reload's wait and the metrics server use it."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
UDIAG_SHOW_NAME, UDIAG_SHOW_RQLEN = 0x01, 0x10
UNIX_DIAG_NAME, UNIX_DIAG_RQLEN = 0, 4

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
REQUEST = struct.Struct("=BBHIIIII")  # unix_diag_req
MESSAGE = struct.Struct("=BBBBIII")  # unix_diag_msg: family, type, state, pad, inode, cookie
ATTRIBUTE = struct.Struct("=HH")  # rtattr: length, type


def held_inodes(pid: int) -> set[str]:
    """The socket inodes a process holds open."""
    held = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                held.add(target[8:-1])
    except OSError:
        pass
    return held


def connected_inodes(folder: Path, table: str = "/proc/net/unix") -> set[str]:
    """Inodes of the connections made to a socket in `folder` (a connected
    socket shows its listener's path in the table; state 03)."""
    prefix = f"{folder}/"
    found = set()
    try:
        lines = Path(table).read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[5] == "03" and fields[7].startswith(prefix):
            found.add(fields[6])
    return found


def held_connections(pid: int, folder: Path) -> set[str]:
    """The connections made to a socket in `folder` that process `pid` holds
    (a retiring worker's: guards.Watchdog.sending)."""
    return held_inodes(pid) & connected_inodes(folder)


def dump_request() -> bytes:
    """A sock_diag request for every listening unix socket's path and backlog."""
    body = REQUEST.pack(socket.AF_UNIX, 0, 0, 1 << TCP_LISTEN, 0, UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN,
                        0xFFFFFFFF, 0xFFFFFFFF)
    return HEADER.pack(HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def parse_listeners(data: bytes) -> tuple[dict[str, tuple[str, int]], bool]:
    """({inode: (path, waiting connections)}, whether the dump ended) from
    one read of the netlink answer. Raises OSError on a netlink error."""
    found: dict[str, tuple[str, int]] = {}
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind = HEADER.unpack_from(data, offset)[:2]
        if length < HEADER.size or offset + length > len(data):
            raise OSError("a truncated sock_diag message")
        if kind == NLMSG_DONE:
            return found, True
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, offset + HEADER.size)[0]
            raise OSError(code, os.strerror(code))
        if kind == SOCK_DIAG_BY_FAMILY and length >= HEADER.size + MESSAGE.size:
            inode = MESSAGE.unpack_from(data, offset + HEADER.size)[4]
            path, waiting = "", 0
            at = offset + HEADER.size + MESSAGE.size
            while at + ATTRIBUTE.size <= offset + length:
                size, attribute = ATTRIBUTE.unpack_from(data, at)
                if size < ATTRIBUTE.size:
                    break
                value = data[at + ATTRIBUTE.size:at + size]
                if attribute == UNIX_DIAG_NAME:
                    # A path ends at its NUL; an abstract name starts with one.
                    name = value if value[:1] == b"\0" else value.split(b"\0", 1)[0]
                    path = name.decode("utf-8", "replace")
                elif attribute == UNIX_DIAG_RQLEN and len(value) >= 4:
                    waiting = struct.unpack_from("=I", value)[0]
                at += (size + 3) & ~3
            found[str(inode)] = (path, waiting)
        offset += (length + 3) & ~3
    return found, False


def listeners() -> dict[str, tuple[str, int]] | None:
    """{inode: (path, connections waiting to be accepted)} of every listening
    unix socket in this network namespace; None if the kernel will not say."""
    found: dict[str, tuple[str, int]] = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(2.0)
            sock.sendall(dump_request())
            done = False
            while not done:
                part, done = parse_listeners(sock.recv(1 << 16))
                found.update(part)
    except (OSError, struct.error):
        return None
    return found


def backlog(paths: set[str], pid: int) -> int | None:
    """Connections waiting to be accepted on the listeners at `paths` that
    process `pid` holds; None if the kernel will not say."""
    every = listeners()
    if every is None:
        return None
    held = held_inodes(pid)
    return sum(waiting for inode, (path, waiting) in every.items() if inode in held and path in paths)
