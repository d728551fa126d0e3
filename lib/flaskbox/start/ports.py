"""What to say of a port below the lowest one a non-root process may bind
(net.ipv4.ip_unprivileged_port_start): PORT and TLS_PORT alike, and for the
network the container has. Its own network (Docker's bridge, a pod) has its
own copy of the setting, which `--sysctl` sets for it; the host's network
(--network host) has the host's, which Docker refuses to set from a
container and only the host's administrator may change."""

from __future__ import annotations


def too_low(name: str, port: int, start: int, host_network: bool, instead: int) -> str:
    """The message for `name`=`port` below `start`, suggesting `instead`."""
    said = (f"{name}={port} is below {start}, the lowest port a non-root process may bind here "
            "(net.ipv4.ip_unprivileged_port_start)")
    if host_network:
        return (f"{said}, and on the host's network (--network host) that is the host's own setting: set "
                f"{name}={instead}, or, as the host's administrator, `sysctl -w "
                f"net.ipv4.ip_unprivileged_port_start={port}` on the host")
    return (f"{said}: set {name}={instead} and publish it (-p {port}:{instead}), or give the container "
            "--sysctl net.ipv4.ip_unprivileged_port_start=0")
