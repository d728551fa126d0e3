"""METRICS_PORT's reader (flaskbox/sidecars/metrics.py, nginx_lines.py), in-process: it counts every
line nginx writes while it renames the files and has nginx reopen them (a
stand-in for nginx appends lines and reopens its file on SIGUSR1, as nginx
does; the count is exact across several rotations), and it reads refusal
reasons as nginx really writes them."""

import re
import subprocess
import sys
import time

import pytest

from flaskbox.sidecars import metrics, nginx_lines
from helpers import REPO

# Appends one metrics line per iteration, in batches as nginx's buffer
# does, and reopens access.log on SIGUSR1, then says so (the number of
# reopens, in a file of its own); stops after COUNT lines.
WRITER = """
import signal, sys, time
path, count, acks = sys.argv[1], int(sys.argv[2]), sys.argv[3]
state = {"file": open(path, "a"), "reopen": False, "reopens": 0}
signal.signal(signal.SIGUSR1, lambda *_: state.update(reopen=True))
written = 0
while written < count:
    if state["reopen"]:
        state["file"].close()
        state["file"] = open(path, "a")
        state["reopen"] = False
        state["reopens"] += 1
        with open(acks + ".part", "w") as ack:
            ack.write(str(state["reopens"]))
        import os; os.replace(acks + ".part", acks)
    batch = min(500, count - written)
    state["file"].write("app|200|0.003||GET\\n" * batch)
    state["file"].flush()
    written += batch
    time.sleep(0.002)
# A rotation's SIGUSR1 may land while this process exits: once Python has
# put the default action back, it would kill it (CI saw it). Held, it is
# dropped with the process.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
state["file"].close()
"""


class Clock:
    """nginx_lines' clock, moved on by the test: the reopen grace (how long
    nginx may still write a renamed file) passes when the writer has said it
    reopened, not after some seconds a loaded machine may overrun."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def monotonic_ns() -> int:
        return time.monotonic_ns()  # unique names for the renamed files


def test_every_line_is_counted_across_rotations(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "ROTATE_BYTES", 200_000)  # ~10000 lines a file
    clock = Clock()
    monkeypatch.setattr(nginx_lines, "time", clock)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "nginx").mkdir()
    total = 60_000
    log = tmp_path / "metrics" / "access.log"
    acks = tmp_path / "reopens"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(total), str(acks)])
    (tmp_path / "nginx" / "nginx.pid").write_text(f"{writer.pid}\n")
    collector = metrics.Collector(tmp_path, 64, "sync")
    rotations = []
    rotate = collector._rotate
    monkeypatch.setattr(collector, "_rotate", lambda: (rotations.append(1), rotate()))

    def reopened() -> int:
        try:
            return int(acks.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def poll() -> None:
        collector.poll()
        # Once the writer has reopened after every rotation (or is done), no
        # renamed file is written any more: its grace may pass.
        if writer.poll() is not None or reopened() >= len(rotations):
            clock.now += nginx_lines.REOPEN_GRACE_SECONDS

    while writer.poll() is None:
        poll()
        time.sleep(0.05)
    assert writer.returncode == 0
    # Whatever is left is read, however long a loaded machine takes (bounded).
    deadline = time.monotonic() + 60
    while collector.counts.requests["app", "GET", "200"] < total and time.monotonic() < deadline:
        poll()
        time.sleep(0.05)
    assert collector.counts.requests["app", "GET", "200"] == total
    assert collector.counts.observed["app"] == total
    assert len(rotations) >= 1
    # Renamed files are removed once read, after the grace.
    poll()
    collector.poll()
    assert not list((tmp_path / "metrics").glob("access.log.old-*"))


@pytest.mark.parametrize("mark, reason", [("queue_full-", "queue_full"), ("-", None), ("", None),
                                          ("-, stream_slots", "stream_slots"), ("queue_wait", "queue_wait"),
                                          ("bogus", None)])
def test_refusal_marks_as_nginx_writes_them(mark, reason):
    counts = metrics.Counts()
    counts.access(f"app|503|0.000|{mark}|GET".encode())
    counted = {name: value for name, value in counts.refusals.items() if value}
    assert counted == ({reason: 1} if reason else {})


@pytest.mark.parametrize("zone, reason", [("flaskbox_clients", "per_client"),
                                          ("flaskbox_body_clients", "per_client"),
                                          ("flaskbox_static_clients", "per_client"),
                                          ("flaskbox_bodies", "connection_slots"),
                                          ("flaskbox_static", "connection_slots"),
                                          ("flaskbox_uploads", "upload_space"),
                                          ("flaskbox_upload_clients", "upload_space"),
                                          ("a_zone_of_yours", None)])
def test_limit_conn_warnings_name_their_reason(zone, reason):
    # Every limit_conn zone nginx.conf and nginx-static.conf declare has its reason.
    counts = metrics.Counts()
    counts.error(f'2026/11/23 02:05:38 [warn] 44#44: *4 limiting connections by zone "{zone}", client: '
                 '127.0.0.1, server: localhost, request: "POST /upload HTTP/1.1"'.encode())
    counted = {name: value for name, value in counts.refusals.items() if value}
    assert counted == ({reason: 1} if reason else {})


def test_every_limit_conn_zone_has_a_reason():
    text = "".join((REPO / name).read_text() for name in ("nginx.conf", "nginx-static.conf"))
    zones = set(re.findall(r"limit_conn_zone \S+ zone=(\w+):", text))
    assert zones == set(metrics.ZONES), zones ^ set(metrics.ZONES)


def test_each_workers_limit_is_a_gauge_and_every_request_it_holds_is_in_flight(tmp_path):
    # ADAPTIVE_THREADS says each worker's limit (gate-PID); a request waiting
    # for a place under it is in flight as much as one that runs.
    (tmp_path / "metrics").mkdir()
    collector = metrics.Collector(tmp_path, 64, "sync")
    generation = collector.place.uwsgi_dir / "g1"
    generation.mkdir(parents=True)
    (generation / "gate-101").write_text("3\n")
    (generation / "gate-102.new").write_text("junk\n")  # a gate mid-write: not read
    cores = [{"in_request": 1}] * 4 + [{"in_request": 0}] * 12
    stats = {"workers": [{"id": 1, "pid": 101, "status": "busy", "cores": cores},
                         {"id": 2, "pid": 102, "status": "busy", "cores": cores[:3] + cores[4:]}]}
    out = "\n".join(collector._workers(stats, []))
    assert "flaskbox_app_requests_in_flight 7\n" in out + "\n"
    assert 'flaskbox_workers{state="busy"} 2' in out
    limits = [line for line in out.splitlines() if line.startswith("flaskbox_worker_limit{")]
    assert limits == ['flaskbox_worker_limit{worker="1"} 3']
