"""flaskbox's own lines on stderr (stdout carries only the access log),
spelled in one place: `flaskbox: ...` for information, which
ENTRYPOINT_QUIET_LOGS=1 silences, and `flaskbox: warning: ...` and
`flaskbox: error: ...`, never silenced.
Each line is flushed at once: a worker may be killed right after."""

from __future__ import annotations

import os
import sys

PREFIX = "flaskbox: "


def log(message: str) -> None:
    """What a running server reports (a request cut, a worker replaced)."""
    print(f"{PREFIX}{message}", file=sys.stderr, flush=True)


def info(message: str) -> None:
    """A start-up note, silenced by ENTRYPOINT_QUIET_LOGS=1."""
    if os.environ.get("ENTRYPOINT_QUIET_LOGS") != "1":
        log(message)


def warn(message: str) -> None:
    """A mistake the server works around (never silenced)."""
    print(f"{PREFIX}warning: {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"{PREFIX}error: {message}", file=sys.stderr, flush=True)
