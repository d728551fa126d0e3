"""Pure Python, some 2 ms: what a template or an ORM's objects do
(tests/test_interpreter.py, bench/interpreter.py)."""

import os
import time


def work():
    rows = [{"id": i, "name": f"item{i}", "tags": ["a", "b", str(i)]} for i in range(3000)]
    out = ["<li>{} {}</li>".format(row["name"], ",".join(row["tags"])) for row in rows]

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)
    return len("".join(out)) + fib(20)


def best_of(rounds=7):
    """The least CPU time this thread spent on work(), in ms."""
    return round(min(ms for _, ms in timeline(rounds=rounds)), 3)


def timeline(rounds=0, seconds=0.0, pinned=False):
    """Each run of work() as [when it started (CLOCK_MONOTONIC, the same in
    a container's processes and a docker exec), this thread's CPU time in
    ms]: `rounds` runs, and on for `seconds`, so that another process's
    runs can be matched with these by the moment they ran. `pinned`: on
    the first CPU this thread may use, so that two processes timed side by
    side share one CPU's speed (on two, one ran 1.4 times slower than the
    other for a whole run)."""
    runs = []
    allowed = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {min(allowed)})  # 0: this thread alone
    try:
        until = time.monotonic() + seconds
        while len(runs) < rounds or time.monotonic() < until:
            when, start = time.monotonic(), time.thread_time()
            work()
            runs.append([when, (time.thread_time() - start) * 1000])
    finally:
        if pinned:
            os.sched_setaffinity(0, allowed)
    return runs
