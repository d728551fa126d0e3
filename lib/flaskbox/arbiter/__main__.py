"""python3 -I -m flaskbox.arbiter [--log-relay PID PIPE STDERR]

Run by entry-point.sh as PID 1 (exec), once the settings are resolved into
the record and the configs rendered. --log-relay hands over the JSON log
relay the entry-point started (LOG_FORMAT=json, lib/common.sh): its pid,
the pipe every stderr goes to, and the container's own stderr."""

from __future__ import annotations

import os
import sys

from .system import System

# The signal handlers before anything else loads: a stop that comes
# meanwhile is queued, not lost (PID 1 ignores a signal it has no handler for).
SYSTEM = System()

from .. import record  # noqa: E402
from .arbiter import Arbiter  # noqa: E402


def main(argv: list[str]) -> int:
    relay = tuple(int(value) for value in argv[1:4]) if argv[:1] == ["--log-relay"] else None
    return Arbiter(SYSTEM, record.load(), os.environ, relay).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
