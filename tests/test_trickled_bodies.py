"""Bodies trickled in a byte at a time (slowhttptest -B) do not lock their
own address out. nginx checks limit_conn once per request, before it reads
the body, and counts the request until its response is sent: it cannot
count only the time a request holds uWSGI. So requests with a body count in
body slots of their own (CONNECTIONS_PER_CLIENT per address, BODY_SLOTS in
all), and requests without one in CONNECTIONS_PER_CLIENT. Before, 68
trickled POSTs kept every other request from that address at 503 for 60 s
while every worker sat idle.

Replayed with raw sockets, bounded: 70 POSTs of 4096 announced bytes, each
sent a byte every half second for 20 s, all from 127.0.0.1."""

import socket
import time

import pytest

TRICKLED = 70
PER_CLIENT = 60
SECONDS = 20


@pytest.fixture
def server(containers, fixture_image):
    return containers.serving(image=fixture_image["image"], env={"CONNECTIONS_PER_CLIENT": str(PER_CLIENT)})


def open_trickles(port: int) -> list[socket.socket]:
    socks = []
    for _ in range(TRICKLED):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: 4096\r\n\r\nx")
        socks.append(sock)
    return socks


def refused(sock: socket.socket) -> bool:
    """Whether nginx has already answered this trickle (503: no body slot)."""
    sock.setblocking(False)
    try:
        return sock.recv(12).startswith(b"HTTP/1.1 503")
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_trickled_bodies_leave_the_same_address_served(server, figure):
    socks = open_trickles(server.port)
    try:
        # Those beyond the address's body slots are refused at once.
        answered: set[socket.socket] = set()

        def over_the_limit_refused() -> bool:
            answered.update(sock for sock in socks if sock not in answered and refused(sock))
            return len(answered) >= TRICKLED - PER_CLIENT

        server.wait_until(over_the_limit_refused, "the trickles over the limit to be refused", timeout=10)
        statuses, other_address, same_address_post = [], set(), set()
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            for sock in socks:
                if sock not in answered:
                    sock.send(b"x")
            started = time.monotonic()
            statuses.append((server.request("/").status, time.monotonic() - started))
            other_address.add(server.request("/echo", "POST", b"form=1", source="127.0.0.2").status)
            same_address_post.add(server.request("/echo", "POST", b"form=1").status)
            time.sleep(0.5)
        over_the_limit_refused()  # and none of the others since
    finally:
        for sock in socks:
            sock.close()
    slowest = max(seconds for _, seconds in statuses)
    served = sum(status == 200 for status, _ in statuses)
    figure(f"GET from the address of {TRICKLED} trickled POSTs, {SECONDS} s",
           f"{served}/{len(statuses)} 200, slowest {slowest * 1000:.0f} ms")
    assert {status for status, _ in statuses} == {200}
    # The body slots are bounded per address: the 10 over the limit were
    # refused, and so is another POST from the same address meanwhile...
    assert len(answered) == TRICKLED - PER_CLIENT
    assert same_address_post == {503}
    # ...while another address's POST is served.
    assert other_address == {200}
