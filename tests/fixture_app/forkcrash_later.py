"""exits.py's app (an exit handler that says its start and end) whose first
worker starts and serves, and whose every later worker dies as it starts:
an at-fork hook that aborts from the master's second fork on. The pool
cannot stay up while a healthy worker serves."""

import os

from exits import app  # noqa: F401  (the fixture app, with its exit handler)

FORKS = [0]


def counted() -> None:
    FORKS[0] += 1


def crash_after_the_first() -> None:
    if FORKS[0] > 1:
        os.abort()


os.register_at_fork(before=counted, after_in_child=crash_after_the_first)
