"""The requests waiting for a uWSGI worker are counted (lib/flaskbox/
unix_sockets.py): uWSGI's stats say `queue: 0` for a unix socket whatever
waits in it, so METRICS_PORT's flaskbox_queue_depth read 0 with requests
piling up, and a reload's retiring code counted none of its queued requests.
During a reload, the gauges of what is in flight count the retiring
generation's requests too. In process against this kernel, then against a
container."""

import os
import socket
import struct
import threading

from test_metrics import sample, scrape

from containers import SlowRequest
from flaskbox.sidecars import unix_sockets, uwsgi_stats
from helpers import docker, free_port


def listening(path, waiting: int):
    """A listener at `path` with `waiting` connections it never accepts."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    clients = [socket.socket(socket.AF_UNIX) for _ in range(waiting)]
    for client in clients:
        client.connect(str(path))
    return server, clients


def test_the_kernel_counts_what_waits_in_a_listeners_backlog(tmp_path):
    server, clients = listening(tmp_path / "app.sock", 3)
    idle, _ = listening(tmp_path / "idle.sock", 0)
    with server, idle:
        assert unix_sockets.backlog({str(tmp_path / "app.sock")}, os.getpid()) == 3
        assert unix_sockets.backlog({str(tmp_path / "idle.sock")}, os.getpid()) == 0
        # A listener of the same path that this process does not hold (another
        # container's, on the host's network) is not counted.
        assert unix_sockets.backlog({str(tmp_path / "app.sock")}, 1 if os.getpid() != 1 else 2) == 0
        server.accept()[0].close()
        assert unix_sockets.backlog({str(tmp_path / "app.sock")}, os.getpid()) == 2
        stats = {"pid": os.getpid(), "sockets": [{"name": str(tmp_path / "app.sock"), "queue": 0}]}
        assert uwsgi_stats.queued(stats) == 2
    for client in clients:
        client.close()


def test_without_the_kernels_answer_uwsgis_own_figure_stands(monkeypatch):
    monkeypatch.setattr(unix_sockets, "listeners", lambda: None)
    sockets = [{"name": "/a.sock", "queue": 2}, {"name": "/b.sock", "queue": 1}]
    stats = {"pid": os.getpid(), "sockets": sockets}
    assert uwsgi_stats.queued(stats) == 3


def message(kind: int, body: bytes) -> bytes:
    data = unix_sockets.HEADER.pack(unix_sockets.HEADER.size + len(body), kind, 2, 1, 0) + body
    return data + b"\0" * (-len(data) % 4)


def attribute(kind: int, value: bytes) -> bytes:
    data = unix_sockets.ATTRIBUTE.pack(unix_sockets.ATTRIBUTE.size + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def listener(inode: int, name: bytes, waiting: int) -> bytes:
    return message(unix_sockets.SOCK_DIAG_BY_FAMILY,
                   unix_sockets.MESSAGE.pack(1, 1, 10, 0, inode, 0, 0)
                   + attribute(unix_sockets.UNIX_DIAG_NAME, name)
                   + attribute(unix_sockets.UNIX_DIAG_RQLEN, struct.pack("=II", waiting, 128)))


def test_netlink_answers_are_read_part_by_part():
    first = listener(7, b"/tmp/flaskbox/uwsgi/g1/uwsgi.sock\0", 4) + listener(8, b"\0abstract", 0)
    assert unix_sockets.parse_listeners(first) == (
        {"7": ("/tmp/flaskbox/uwsgi/g1/uwsgi.sock", 4), "8": ("\0abstract", 0)}, False)
    last = listener(9, b"/x.sock", 1) + message(unix_sockets.NLMSG_DONE, b"\0" * 4)
    assert unix_sockets.parse_listeners(last) == ({"9": ("/x.sock", 1)}, True)


def test_a_netlink_error_or_a_cut_message_is_not_a_count():
    refused = message(unix_sockets.NLMSG_ERROR, struct.pack("=i", -1) + b"\0" * 16)
    for data in (refused, listener(7, b"/x.sock", 4)[:-6]):
        try:
            unix_sockets.parse_listeners(data)
        except OSError:
            continue
        raise AssertionError(f"{data!r} read as a count")


class Queued:
    """A container with one single-threaded worker and METRICS_PORT: a
    SECONDS request held in its worker and COUNT more queued behind it."""

    def __init__(self, containers, seconds: int, count: int):
        self.port = free_port()
        self.c = containers.run(env={"METRICS_PORT": str(self.port), "UWSGI_PROCESSES": "1",
                                     "UWSGI_THREADS": "1"})
        self.c.wait_http("/")
        self.c.wait_until(lambda: scrape(self.port), "the metrics server")
        self.held = SlowRequest(self.c, seconds)
        self.statuses: list[int] = []
        self.waiting = [threading.Thread(target=self._send) for _ in range(count)]
        for thread in self.waiting:
            thread.start()

    def _send(self) -> None:
        self.statuses.append(self.c.request("/", timeout=30).status)

    def scrape(self) -> str:
        return scrape(self.port)

    def answered(self) -> list[int]:
        """Every status, the held request's first."""
        held = self.held.join()
        for thread in self.waiting:
            thread.join(30)
        return [held, *self.statuses]


def test_the_metric_counts_requests_queued_behind_a_busy_worker(module_containers):
    q = Queued(module_containers, 5, 3)
    text = q.c.wait_until(lambda: (t := q.scrape()) and sample(t, "flaskbox_queue_depth") == 3 and t,
                          "3 requests counted as queued behind the one in the worker", timeout=4)
    assert sample(text, "flaskbox_app_requests_in_flight") == 1, text
    assert q.answered() == [200] * 4
    q.c.wait_until(lambda: sample(q.scrape(), "flaskbox_queue_depth") == 0, "an empty queue")


def test_a_reloads_retiring_generation_counts_in_the_gauges(module_containers):
    # One single-threaded worker: a 12 s request in it and two queued behind
    # it, then a reload. The old generation finishes them beside the new
    # one; before, every gauge read only the new one: 0 in flight, 0 queued.
    # (12 s: still in flight once the new code's import, seconds on a loaded
    # machine, is done and the gauges are read.)
    q = Queued(module_containers, 12, 2)
    c = q.c
    c.wait_until(lambda: sample(q.scrape(), "flaskbox_queue_depth") == 2, "2 queued")
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the reload")
    text = q.scrape()
    assert sample(text, "flaskbox_app_requests_in_flight") == 1, text
    assert sample(text, "flaskbox_queue_depth") == 2, text
    assert sample(text, 'flaskbox_workers{state="busy"}') == 1, text
    assert q.answered() == [200] * 3
    c.wait_until(lambda: "has finished its requests and stopped" in c.logs(), "the old generation's end")
    text = q.scrape()
    assert (sample(text, "flaskbox_queue_depth"), sample(text, "flaskbox_app_requests_in_flight")) == (0, 0)
