"""DEBUG_HOST: the debugger runs any code it is sent, so on the host's
network (--network host, where every interface is the machine's) the dev
server keeps to 127.0.0.1 unless DEBUG_HOST says otherwise; in a network of
the container's own it listens on 0.0.0.0 for -p to reach. The warning's
advice fits the network the container has, and the health check probes the
address the server listens on."""

from containers import Container
from helpers import docker, free_port, unique_name

LOOPBACK, EVERY = "0100007F", "00000000"  # 127.0.0.1 and 0.0.0.0 as /proc/net/tcp writes them


def listen_addresses(container: Container, port: int) -> list[str]:
    """The IPv4 addresses (hex, as the kernel writes them) of the sockets
    listening on `port` in the container's network namespace, from its own
    /proc/net/tcp; [] while none does."""
    table = container.exec("cat", "/proc/net/tcp").stdout.splitlines()[1:]
    found = []
    for line in table:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:  # TCP_LISTEN
            found.append(address)
    return found


def listeners_v6(container: Container, port: int) -> list[str]:
    table = container.exec("cat", "/proc/net/tcp6").stdout.splitlines()[1:]
    return [line.split()[1] for line in table
            if line.split()[3] == "0A" and int(line.split()[1].rpartition(":")[2], 16) == port]


def test_on_the_host_network_the_dev_server_keeps_to_loopback(containers):
    c = containers.run("-d", "debug")
    c.wait_http("/")
    assert listen_addresses(c, c.port) == [LOOPBACK], c.logs()
    assert listeners_v6(c, c.port) == [], c.logs()
    logs = c.logs()
    assert f"It listens on 127.0.0.1:{c.port} only (the host's network; DEBUG_HOST)" in logs, logs
    # Not the advice for a container network, which does not fit here.
    assert "publishes the port" not in logs, logs
    c.wait_healthy(timeout=15)


def test_debug_host_0000_listens_on_every_interface_and_says_so(containers):
    c = containers.run("-d", "debug", env={"DEBUG_HOST": "0.0.0.0"})
    c.wait_http("/")
    assert listen_addresses(c, c.port) == [EVERY], c.logs()
    logs = c.logs()
    assert f"It listens on 0.0.0.0:{c.port} of the host's network (DEBUG_HOST)" in logs, logs
    assert "EVERY interface of this machine" in logs, logs
    c.wait_healthy(timeout=15)


def test_in_a_network_of_its_own_the_warning_is_the_publish_advice(image):
    # ContainerFactory always adds --network host: this one is started here.
    port = free_port()
    c = Container(name=unique_name(), port=port, image=image)
    try:
        docker("run", "-d", "--name", c.name, "--network", "none", "-e", f"PORT={port}", image, "-d", "debug")
        # Its own network: 0.0.0.0, the only address a published port reaches.
        c.wait_until(lambda: listen_addresses(c, port) == [EVERY], "the dev server listening on 0.0.0.0")
        logs = c.logs()
        assert f"-p {port}:{port} publishes the port on EVERY interface of the host" in logs, logs
        assert f"docker run -p 127.0.0.1:{port}:{port} ..." in logs, logs
        assert "the host's network" not in logs, logs
        c.wait_healthy(timeout=15)
    finally:
        c.remove()
