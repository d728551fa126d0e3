"""Temporary files are bounded: request bodies being received take at most
UPLOAD_SPACE of RUNTIME_DIR (by default half of its file system), in slots
of MAX_BODY_SIZE, a quarter of them per client address; responses waiting
for clients that do not read take at most RESPONSE_SPACE (a quarter), and
the rest go from their workers at the client's pace.

Before: 30 stalled uploads filled a 256 MB /tmp in 0.6 s and every other
upload failed with "No space left on device"; 10 clients that never read a
100 MB response got a 512 MB container OOM-killed."""

import socket
import time

import pytest

MB = 1 << 20


def used_kb(container, path: str = "/tmp") -> int:
    """Space used on the file system of `path` inside the container, in KB:
    `df`, not `du`, since nginx unlinks its temporary files once open."""
    return int(container.exec("df", "-k", "--output=used", path).stdout.split()[-1])


def stalled_upload(port: int, source: str, sent: list, answers: list, length: bytes) -> socket.socket:
    """Announces a 10 MB body (Content-Length: `length`), sends 9 MB of it
    and stops. Records the answer if nginx refuses it at once."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0), timeout=5)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + length + b"\r\n\r\n")
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


# nginx reads 010485760 as 10485760: written so, an upload must count as one.
@pytest.mark.parametrize("length", [b"%d" % (10 * MB), b"0%d" % (10 * MB)], ids=["length", "leading zero"])
def test_stalled_uploads_cannot_fill_the_disk(containers, fixture_image, figure, length):
    c = containers.serving(image=fixture_image["image"], docker_args=(
        "--read-only", "--tmpfs", "/tmp:size=256m"))
    assert "12 uploads at once (128m)" in c.logs()
    sent: list[str] = []
    answers: list[str] = []
    socks = [stalled_upload(c.port, "127.0.0.2", sent, answers, length) for _ in range(30)]
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
