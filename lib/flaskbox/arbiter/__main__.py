"""python3 -I -m flaskbox.arbiter [--log-relay PID PIPE STDERR]

Run by entry-point.sh as PID 1 (exec), once the settings are resolved into
the record and the configs rendered. --log-relay hands over the JSON log
relay the entry-point started (LOG_FORMAT=json, lib/common.sh): its pid,
the pipe every stderr goes to, and the container's own stderr."""

from __future__ import annotations

import os
import sys
import traceback

from .system import System

# The signal handlers before anything else loads: a stop that comes
# meanwhile is queued, not lost (PID 1 ignores a signal it has no handler
# for); one that came during Python's start waited, blocked (entry-point.sh).
SYSTEM = System()

from .. import record  # noqa: E402
from ..layout import ARBITER_FAILED  # noqa: E402
from ..log import error  # noqa: E402
from .arbiter import Arbiter  # noqa: E402


def main(argv: list[str]) -> int:
    relay = tuple(int(value) for value in argv[1:4]) if argv[:1] == ["--log-relay"] else None
    try:
        return Arbiter(SYSTEM, record.load(), os.environ, relay).run()
    except Exception:
        traceback.print_exc()
        error("the arbiter (PID 1) failed (traceback above): the container ends, for a restart policy or an "
              "orchestrator to replace it")
        return ARBITER_FAILED  # the kernel ends every process with PID 1


def leave(code: int) -> None:
    """PID 1's exit, at once: what it writes is flushed, and the
    interpreter's own teardown, which has nothing to close for it, is
    skipped. In a container starved of CPU (a fifth of one, eight busy
    loops beside) that teardown took the stop past Docker's SIGKILL."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    leave(main(sys.argv[1:]))
