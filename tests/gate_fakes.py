"""What the gate's in-process tests drive it with (test_admission.py,
test_admission_counts.py, test_parking.py): a fake clock, a fake request, a gate, pages
that take turns."""

from __future__ import annotations

from flaskbox.request import deadline
from flaskbox.request.admission import WINDOW, Gate

THREADS = 16


class Clock:
    """The gate's monotonic(), moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


class Fake:
    """What the gate reads and writes of a request.Request (hashable, as
    the gate keeps the requests holding a place in a set)."""

    def __init__(self, path: str):
        self.environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
        self.times = self.entered = None
        self.entry = 0
        self.counted = self.credited = self.cpu = 0.0
        self.seen = None
        self.lent = False


def request(path: str = "/page") -> Fake:
    return Fake(path)


def gate(threads: int = THREADS) -> Gate:
    return Gate(threads, deadline.Times(30.0))


def alone(g: Gate, clock: Clock, path: str, seconds: float) -> None:
    """One request of `path` with the worker to itself, for `seconds`."""
    r = request(path)
    assert g.enter(r, 30.0)
    clock.step(seconds)
    g.leave(r, whole=True)


def measured(g: Gate, clock: Clock, path: str, seconds: float) -> None:
    """A kind's first request (its set-up, kept apart), then one that measures it alone."""
    alone(g, clock, path, seconds)
    alone(g, clock, path, seconds)


def taking_turns(g: Gate, clock: Clock, count: int, seconds: float = 0.02) -> list[int]:
    """`count` windows of requests that take turns (at Python's lock, or a
    CPU): one answer every `seconds`, so that n at once each take n times
    their time alone; the limit after each window."""
    running: list = []
    limits = []
    for _ in range(count):
        end = clock.now + WINDOW
        while clock.now < end:
            while len(running) < g.limit:
                r = request("/compute")
                assert g.enter(r, 30.0)
                running.append(r)
            clock.step(seconds)
            g.leave(running.pop(0))
        limits.append(g.limit)
    for r in running:
        g.leave(r)
    return limits
