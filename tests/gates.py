"""A worker's ADAPTIVE_THREADS gate in process, for test_admission.py,
test_gate_rest.py and test_newborn.py: its stop pipe a C pipe, as uWSGI
makes it, the watchdog's windows as its ticks find them, and a request on
a thread of its own."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import threading
import time

from flaskbox.layout import Generation
from flaskbox.request import admission, stop_pipe
from flaskbox.request.admission import Admission


def c_pipe() -> tuple[int, int]:
    """A pipe as uWSGI makes it, with C's pipe(): no O_CLOEXEC."""
    fds = (ctypes.c_int * 2)()
    assert ctypes.CDLL(None, use_errno=True).pipe(fds) == 0
    return fds[0], fds[1]


@contextlib.contextmanager
def started_gate(folder, threads: int = 4, cpus: int = 0):
    """A started gate of `threads` threads whose gate-PID is in `folder`,
    and its stop pipe's write end."""
    known = frozenset(stop_pipe.open_pipes().values())
    r, w = c_pipe()
    gate = Admission(threads, known, None, Generation(folder), cpus)
    gate.started()
    assert gate.stop_fd == r and (folder / f"gate-{os.getpid()}").read_text() == "1 0 0\n"  # said at once
    try:
        yield gate, w
    finally:
        gate.stop()  # what a test left parked goes before its pipes close
        until(lambda: gate.parked == 0, "the parked threads gone")
        for fd in (r, gate.wake_r, gate.wake_w):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.close(w)


def finish_requests(gate: Admission, count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=gate.after_request, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def until(predicate, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not {what} within {within} s"
        time.sleep(0.01)


def idle_windows(gate: Admission, count: int) -> None:
    """`count` windows with no request, as the watchdog's ticks find them."""
    for _ in range(count):
        gate.since -= admission.WINDOW
        gate.tick(time.monotonic())


class Held:
    """A request on a thread of its own: let in by the gate, it computes
    (or, `waits`, waits for an event; `hashes`, computes outside Python's
    lock) until told to end, then uWSGI's after-request hook."""

    def __init__(self, gate: Admission, name: str, order: list[str], waited: float = 0.0,
                 limit: float = 30.0, waits: bool = False, hashes: bool = False):
        self.gate, self.name, self.order = gate, name, order
        self.waited, self.limit, self.waits, self.let_in = waited, limit, waits, None
        self.hashes = hashes
        self.looks = 0  # how often it looked at its time left while it waited
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        self.let_in = self.gate.enter(self.waited, self.limit, self.expected)
        if self.let_in is None:
            return
        self.order.append(self.name)
        deadline = time.monotonic() + 30
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.waits:
                self.done.wait(0.05)
            elif self.hashes:  # a password check: OpenSSL's, the lock let go
                hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 20_000)
            else:
                sum(range(2000))  # a page that computes
        self.gate.after_request()

    def expected(self) -> float:
        self.looks += 1
        return 0.0


# Each uWSGI thread's epoll queue: the events it watches the listening socket for.
EVENTS = r"""
import os
worker = next(p for p in os.listdir("/proc") if p.isdigit()
              and b"uWSGI worker" in open(f"/proc/{p}/cmdline", "rb").read())
rows = [row.split() for row in open("/proc/net/unix").read().splitlines()[1:]]
listening = {row[6] for row in rows if row[3] == "00010000"}
fds = {}
for fd in os.listdir(f"/proc/{worker}/fd"):
    try:
        fds[fd] = os.readlink(f"/proc/{worker}/fd/{fd}")
    except OSError:
        pass
listeners = {fd for fd, target in fds.items() if target.strip("socket:[]") in listening}
for fd, target in fds.items():
    if target == "anon_inode:[eventpoll]":
        for line in open(f"/proc/{worker}/fdinfo/{fd}"):
            fields = line.split()
            if fields[:1] == ["tfd:"] and fields[1] in listeners:
                print(fields[3])
"""


def listener_events(container) -> list[int]:
    return [int(word, 16) for word in container.exec("python3", "-c", EVENTS).stdout.split()]


# uWSGI's own worker, for test_accepting.py and test_newborn.py: pages that compute (the thread's
# own CPU) and that wait, each saying the process that answered.
APP = """\
import os
import time

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "ready"


@app.get("/burn/<float:seconds>")
def burn(seconds):
    print("burn begun", flush=True)
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(1000))
    return f"burnt {os.getpid()}"


@app.get("/wait/<float:seconds>")
def wait(seconds):
    time.sleep(seconds)
    return str(os.getpid())
"""
