"""exits.py's app (an exit handler that says its start and end) whose new
workers take SLOW_FORK_SECONDS in an at-fork hook while the file
/tmp/slow-fork exists: a worker still being born when a stop comes, as one
that uWSGI respawns the moment before (max-requests, a crash) is, held there
long enough to see what the stop does to it."""

import os
import sys
import time

from exits import app  # noqa: F401  (the fixture app, with its exit handler)

SLOW_FORK_SECONDS = float(os.environ.get("SLOW_FORK_SECONDS", "3"))


def slow_birth() -> None:
    if os.path.exists("/tmp/slow-fork"):
        print(f"slow fork start pid={os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(SLOW_FORK_SECONDS)
        print(f"slow fork end pid={os.getpid()}", file=sys.stderr, flush=True)


os.register_at_fork(after_in_child=slow_birth)
