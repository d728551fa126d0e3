"""flaskbox's own lines on stderr (stdout carries only the access log),
spelled in one place: `flaskbox: ...` for information, which
ENTRYPOINT_QUIET_LOGS=1 silences, and `flaskbox: warning: ...` and
`flaskbox: error: ...`, never silenced.
Each line is flushed at once: a worker may be killed right after.

A line that ends with STACK_FOLLOWS is followed by a stack, its lines
indented (request/stacks.py): the JSON log relay puts them in that line's
record (sidecars/jsonlog.py)."""

from __future__ import annotations

import os
import sys

PREFIX = "flaskbox: "
STACK_FOLLOWS = "its stack, most recent call last:"
# A pipe's writes up to this size are never split nor interleaved with
# another process's (POSIX's PIPE_BUF, 4096 on Linux): a block that fits
# reaches the log, and the relay, whole.
BLOCK_MOST = 4000


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


def log_block(text: str) -> None:
    """Lines (a stack under the line it belongs to) in one write, so that no
    other process's line lands among them; `text` ends with a newline and is
    kept under BLOCK_MOST bytes by its maker."""
    data = (PREFIX + text).encode("utf-8", "backslashreplace")
    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stderr with no descriptor (pytest's capture)
        sys.stderr.write(data.decode())
        sys.stderr.flush()
        return
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass  # stderr is gone: nothing to tell
