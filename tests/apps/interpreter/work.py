"""Pure Python, some 2 ms: what a template or an ORM's objects do
(tests/test_interpreter.py, bench/interpreter.py)."""

import time


def work():
    rows = [{"id": i, "name": f"item{i}", "tags": ["a", "b", str(i)]} for i in range(3000)]
    out = ["<li>{} {}</li>".format(row["name"], ",".join(row["tags"])) for row in rows]

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)
    return len("".join(out)) + fib(20)


def best_of(rounds=7, seconds=0.0):
    """The least CPU time this thread spent on work(), in ms: over `rounds`
    runs, and on for `seconds` more, so that two timings taken side by side
    span the same spell of a shared host's speed."""
    times = []
    until = time.monotonic() + seconds
    while len(times) < rounds or time.monotonic() < until:
        start = time.thread_time()
        work()
        times.append(time.thread_time() - start)
    return round(min(times) * 1000, 3)
