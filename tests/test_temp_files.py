"""Temporary files are bounded: request bodies being received take at most
UPLOAD_SPACE of RUNTIME_DIR (by default half of its file system), in slots
of MAX_BODY_SIZE, a quarter of them per client address; responses waiting
for clients that do not read take at most RESPONSE_SPACE (a quarter), and
the rest go from their workers at the client's pace.

Before: 30 stalled uploads filled a 256 MB /tmp in 0.6 s and every other
upload failed with "No space left on device"; 10 clients that never read a
100 MB response got a 512 MB container OOM-killed."""

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import pytest

from helpers import CERT, KEY, free_port

MB = 1 << 20


def used_kb(container, path: str = "/tmp") -> int:
    """Space used on the file system of `path` inside the container, in KB:
    `df`, not `du`, since nginx unlinks its temporary files once open."""
    return int(container.exec("df", "-k", "--output=used", path).stdout.split()[-1])


def stalled_upload(port: int, source: str, sent: list, answers: list, path: str,
                   length: bytes) -> socket.socket:
    """Announces a 10 MB body to `path` (Content-Length: `length`), sends
    9 MB of it and stops. Records the answer if nginx refuses it at once."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0), timeout=5)
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n" % (path.encode(), length))
    sock.settimeout(0.5)
    try:
        for _ in range(9):
            sock.sendall(b"u" * MB)
        sent.append(source)
    except OSError:
        pass
    try:
        answer = sock.recv(200)
        if answer:
            answers.append(answer.split(b"\r\n")[0].decode())
    except OSError:
        pass
    return sock


@pytest.mark.parametrize(("path", "length"), [
    ("/upload", b"%d" % (10 * MB)),
    # nginx reads 010485760 as 10485760: written so, an upload counts as one.
    ("/upload", b"0%d" % (10 * MB)),
    # A static URL with no file goes on to the app, body and all.
    ("/static/no-such-file.bin", b"%d" % (10 * MB)),
], ids=["length", "leading zero", "static URL with no file"])
def test_stalled_uploads_cannot_fill_the_disk(containers, fixture_image, figure, path, length):
    c = containers.serving(image=fixture_image["image"], docker_args=(
        "--read-only", "--tmpfs", "/tmp:size=256m"))
    assert ("12 uploads at once at most: UPLOAD_SPACE (128m, half of RUNTIME_DIR's disk) over the "
            "limit") in c.logs()
    sent: list[str] = []
    answers: list[str] = []
    socks = [stalled_upload(c.port, "127.0.0.2", sent, answers, path, length) for _ in range(30)]
    # The accepted uploads' 9 MB each reach the disk as nginx reads them.
    peak = c.wait_until(lambda: (used := used_kb(c)) >= 3 * 8 * 1024 and used, "the uploads to reach /tmp")
    # Another client's upload meanwhile gets through whole.
    resp = c.request("/upload", method="POST", body=b"v" * (5 * MB), source="127.0.0.3", timeout=30)
    figure("30 stalled 10 MB uploads on a 256 MB /tmp: refused at once, disk used",
           f"{answers.count('HTTP/1.1 503 Service Temporarily Unavailable')}, {peak // 1024} MB")
    assert resp.status == 200 and resp.json() == {"received": 5 * MB}
    # One client holds at most 3 of the 12 slots; the rest got 503 at once.
    assert answers.count("HTTP/1.1 503 Service Temporarily Unavailable") == 30 - 3, answers
    assert peak <= 128 * 1024 + 1024, peak
    for sock in socks:
        sock.close()
    assert "No space left" not in c.logs()


def test_the_health_check_takes_no_body(containers, fixture_image):
    # /-/healthy is exempt from every limit, so that a busy container still
    # answers it: a body there would reach the disk unbounded.
    c = containers.serving(image=fixture_image["image"])
    with socket.create_connection(("127.0.0.1", c.port), timeout=5) as sock:
        sock.sendall(b"POST /-/healthy HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (10 * MB))
        assert sock.recv(200).split(b"\r\n")[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert c.request("/-/healthy").status == 200


def h2_stalled_uploads(port: int, count: int, method: str = "POST", path: str = "/upload",
                       body: int = 1024) -> tuple[ssl.SSLSocket, dict[int, int]]:
    """`count` uploads on one HTTP/2 connection, each with no
    Content-Length (a body of unknown length, as a streaming fetch() or
    `curl -T -` sends it): `body` bytes of it, then silence (with no body,
    a request complete in its headers). The statuses answered at once, by
    stream."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                               server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for _ in range(count):
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", method), (":path", path), (":scheme", "https"),
                                   (":authority", f"127.0.0.1:{port}")], end_stream=not body)
        for start in range(0, body, 16384):  # the largest frame a peer must take
            conn.send_data(stream, b"u" * min(16384, body - start))
    sock.sendall(conn.data_to_send())
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                statuses[event.stream_id] = int(dict(event.headers)[b":status"])
        sock.sendall(conn.data_to_send())
        # Every answer that comes at once has come: one more short look.
        sock.settimeout(0.5 if len(statuses) >= count - 3 else 5)
    return sock, statuses


def h2_server(containers, fixture_image, certs) -> tuple:
    tls_port = free_port()
    c = containers.serving(image=fixture_image["image"],
                           env={"TLS_CERT": CERT, "TLS_KEY": KEY, "TLS_PORT": str(tls_port)},
                           docker_args=("--read-only", "--tmpfs", "/tmp:size=256m",
                                        "-v", f"{certs}:/etc/tls:ro"))
    assert ("12 uploads at once at most: UPLOAD_SPACE (128m, half of RUNTIME_DIR's disk) over the "
            "limit") in c.logs()
    return c, tls_port


# WebDAV's PROPFIND, or any method of an app's own: a body all the same.
@pytest.mark.parametrize("method", ["POST", "PROPFIND"])
def test_http2_uploads_of_unknown_length_count_as_uploads(containers, fixture_image, certs, method):
    c, tls_port = h2_server(containers, fixture_image, certs)
    sock, statuses = h2_stalled_uploads(tls_port, 30, method)
    with sock:
        # One client holds at most 3 upload slots; the rest are refused at once.
        assert sorted(statuses.values()) == [503] * 27, (statuses, c.logs()[-3000:])
        assert c.request("/upload", method="POST", body=b"v" * MB, source="127.0.0.3").status == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_http2_bodies_on_get_head_and_options_stay_in_memory(containers, fixture_image, certs, method):
    # Every browser request is one of these, with no body and no
    # Content-Length: they cannot take upload slots. A body sent with one
    # anyway may not outgrow nginx's memory buffer (16 KB), so none reaches
    # the disk: 413 as soon as it does (before: held, without a slot, for
    # as long as the client kept sending, and written to RUNTIME_DIR).
    c, tls_port = h2_server(containers, fixture_image, certs)
    # 3 x 20 KB: what the connection's first flow-control window allows.
    sock, statuses = h2_stalled_uploads(tls_port, 3, method, "/", body=20 * 1024)
    with sock:
        assert sorted(statuses.values()) == [413] * 3, (statuses, c.logs()[-3000:])
    # Without a body, or a small one, the app answers as ever.
    sock, statuses = h2_stalled_uploads(tls_port, 2, method, "/", body=0)
    with sock:
        assert sorted(statuses.values()) == [200] * 2, (statuses, c.logs()[-3000:])


def never_read(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    # A small receive window, as a stalled mobile client would have.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    return sock


def test_clients_that_never_read_cannot_exhaust_memory_or_disk(containers, fixture_image, figure):
    # On a tmpfs (memory) under a 512 MB limit: RESPONSE_SPACE is 128 MB.
    c = containers.serving(image=fixture_image["image"],
                           docker_args=("--memory", "512m", "--read-only", "--tmpfs", "/tmp"))
    socks = [never_read(c.port, "/big/100") for _ in range(10)]
    c.wait_until(lambda: used_kb(c) > 50 * 1024, "one response to be spooled")
    # Sampled over the stall: one response fits the spool, the other nine
    # wait in their workers; everyone else is served meanwhile.
    worst_rss = worst_disk = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        worst_rss = max(worst_rss, c.rss_kb())
        worst_disk = max(worst_disk, used_kb(c))
        assert c.request("/", timeout=5).status == 200
        time.sleep(0.5)
    state = c.inspect()["State"]
    figure("10 clients never reading 100 MB, RESPONSE_SPACE 128m: container memory (max RSS), disk MB, "
           "OOM-killed", f"{worst_rss // 1024} MB, {worst_disk // 1024}, {state['OOMKilled']}")
    assert state["Running"] and not state["OOMKilled"], c.logs()
    assert worst_disk <= 128 * 1024 + 1024, worst_disk
    for sock in socks:
        sock.close()
    c.wait_http("/", timeout=30)
