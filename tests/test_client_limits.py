"""One client address cannot take the server from the others: requests in
progress are limited per address (CONNECTIONS_PER_CLIENT, the real client
behind TRUSTED_PROXIES), and thousands of connections that never finish
their header do not exhaust nginx's connection slots.

Clients are told apart by source address: 127.0.0.2, 127.0.0.3, ... are
loopback addresses too."""

import asyncio
import resource
import select
import socket
import threading
import time

import pytest

from containers import Response

LIMIT = 4
HALF_OPEN = 3000
# Seconds each held request runs: longer than the lines saying they began
# can take to reach the container's log under a busy suite (with 3 s, one
# had ended before the check now and then, and its slot was free).
HELD = 8


def hold(container, count: int, source: str | None = None,
         headers: dict | None = None) -> list[threading.Thread]:
    """`count` requests of HELD s from one client, left running once this returns."""
    began = container.logs().count(f"sleep start {HELD}")
    threads = [threading.Thread(target=container.request, args=(f"/sleep/{HELD}",),
                                kwargs={"source": source, "headers": headers, "timeout": 30})
               for _ in range(count)]
    for thread in threads:
        thread.start()
    container.wait_until(lambda: container.logs().count(f"sleep start {HELD}") >= began + count,
                         f"{count} requests running")
    return threads


def over_the_limit(container, source: str, headers: dict | None = None) -> Response:
    """One more request from a client holding LIMIT: refused while they are
    held (each HELD s). Asked again for up to 2 s while they run."""
    return container.wait_until(
        lambda: (answer := container.request("/", source=source, headers=headers)).status == 503 and answer,
        "a request over the limit refused", timeout=2)


@pytest.fixture(scope="module")
def limited(module_containers):
    # Enough workers that the limit, not the workers, is what refuses; every
    # thread takes a request at once (ADAPTIVE_THREADS=0). Under the gate, a
    # new worker that got three of the held requests ran two and held the
    # third until one ended, as it does any kind it has not yet measured
    # alone (request/admission.py): 3 running of 4, 1 run in 3.
    return module_containers.serving(env={"CONNECTIONS_PER_CLIENT": str(LIMIT), "UWSGI_PROCESSES": "12",
                                          "TRUSTED_PROXIES": "127.0.0.3", "ADAPTIVE_THREADS": "0"})


def test_one_address_is_limited_others_are_not(limited, figure):
    threads = hold(limited, LIMIT, source="127.0.0.2")
    started = time.monotonic()
    over = over_the_limit(limited, "127.0.0.2")
    figure(f"request {LIMIT + 1} from one address (CONNECTIONS_PER_CLIENT={LIMIT})",
           f"{over.status} in {time.monotonic() - started:.3f} s")
    assert over.status == 503 and over.headers["retry-after"] == "5"
    # Another address is served meanwhile.
    assert limited.request("/", source="127.0.0.4").status == 200
    for thread in threads:
        thread.join(30)


def test_behind_a_trusted_proxy_the_real_client_is_limited(limited):
    # 127.0.0.3 is a trusted proxy: its clients are told apart by
    # X-Forwarded-For, not lumped together as one address.
    first = {"X-Forwarded-For": "203.0.113.1"}
    threads = hold(limited, LIMIT, source="127.0.0.3", headers=first)
    assert over_the_limit(limited, "127.0.0.3", first).status == 503
    assert limited.request("/", source="127.0.0.3", headers={"X-Forwarded-For": "203.0.113.2"}).status == 200
    for thread in threads:
        thread.join(30)


def test_static_files_and_requests_with_a_body_have_slots_of_their_own(limited):
    # A download from disk holds no worker; a request with a body may spend
    # long receiving it: each kind has slots of its own (nginx.conf,
    # per-client limits), so the address's app requests being full stops
    # neither.
    threads = hold(limited, LIMIT, source="127.0.0.5")
    assert over_the_limit(limited, "127.0.0.5").status == 503
    assert limited.request("/static/proof.txt", source="127.0.0.5").status == 200
    assert limited.request("/echo", "POST", b"x=1", source="127.0.0.5").status == 200
    for thread in threads:
        thread.join(30)


def test_a_body_at_a_static_files_url_is_the_apps_and_counts_in_the_body_slots(limited):
    # nginx would answer a POST to a file 405 itself, or serve a GET's file
    # and drop its body: a request with a body goes to the app, here one
    # with no static route (tests/fixture_app), whose 404 is Werkzeug's page.
    # A fingerprinted name has a location of its own, nested, which runs
    # none of its parent's checks: it asks too.
    for path in ("/static/proof.txt", "/static/app.0123abcd.css"):
        posted = limited.request(path, "POST", b"x=1", source="127.0.0.7")
        assert posted.status == 404, (path, posted)
        assert b"The requested URL was not found on the server." in posted.body
    # It holds a body slot, not a static file's: with the address's body
    # slots full of trickled bodies, it waits for none and gets 503, while
    # the file itself is served.
    trickles = Trickles(limited.port, LIMIT, "127.0.0.7")
    try:
        def refused() -> Response | None:
            trickles.refill()
            answer = limited.request("/static/proof.txt", "POST", b"x=1", source="127.0.0.7")
            return answer if answer.status == 503 else None

        full = limited.wait_until(refused, "the address's body slots full")
        assert full.headers["retry-after"] == "5"
        assert limited.request("/static/proof.txt", source="127.0.0.7").status == 200
    finally:
        trickles.close()


class Trickles:
    """`count` bodies trickled from one address, each to hold one of its
    body slots. nginx frees a request's slot when it frees the request, a
    moment after the client has read the answer: a trickle sent right after
    the address's last request may find that slot still taken, and be
    refused (503). One that nginx answered is sent again, until all are
    held."""

    def __init__(self, port: int, count: int, source: str):
        self.port, self.count, self.source = port, count, source
        self.socks: list[socket.socket] = []

    def refill(self) -> None:
        answered = select.select(self.socks, [], [], 0)[0]
        for sock in answered:
            sock.close()
            self.socks.remove(sock)
        while len(self.socks) < self.count:
            sock = socket.create_connection(("127.0.0.1", self.port), source_address=(self.source, 0),
                                            timeout=5)
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nx")
            self.socks.append(sock)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def test_bodies_trickled_to_the_health_check_count_in_the_body_slots(limited):
    # /-/healthy is exempt from the limits so that a busy container still
    # answers its probes, which send no body. A small body sent a byte at a
    # time has no deadline of its own: held without a slot, such requests
    # from one address would take every connection nginx has.
    socks = []
    try:
        for _ in range(LIMIT + 3):
            sock = socket.create_connection(("127.0.0.1", limited.port), source_address=("127.0.0.6", 0),
                                            timeout=5)
            sock.sendall(b"POST /-/healthy HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nx")
            socks.append(sock)
        answers = [first_line(sock, 1) for sock in socks]
        refused = [line for line in answers if line == b"HTTP/1.1 503 Service Temporarily Unavailable"]
        assert len(refused) == 3, f"{answers}\n{limited.logs()[-2000:]}"
        # The address's probes still pass, and its ordinary requests.
        assert limited.request("/-/healthy", source="127.0.0.6").status == 200
        assert limited.request("/", source="127.0.0.6").status == 200
    finally:
        for sock in socks:
            sock.close()


def first_line(sock: socket.socket, wait: float) -> bytes:
    """The answer's status line, if one comes within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(200).split(b"\r\n")[0]
    except TimeoutError:
        return b""


async def half_headers(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Half: ")
        writers.append(writer)
    await asyncio.gather(*(writer.drain() for writer in writers))
    return writers


def test_thousands_of_half_sent_headers_lock_nobody_out(module_containers, figure):
    c = module_containers.serving()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    loop = asyncio.new_event_loop()
    try:
        writers = loop.run_until_complete(half_headers(c.port, HALF_OPEN))
        for source in (None, "127.0.0.2"):
            started = time.monotonic()
            status = c.request("/", timeout=5, source=source).status
            elapsed = time.monotonic() - started
            figure(f"GET / with {HALF_OPEN} half-sent headers open, from {source or '127.0.0.1'}",
                   f"{status} in {elapsed:.3f} s")
            assert status == 200 and elapsed < 1
        for writer in writers:
            writer.close()
    finally:
        loop.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
