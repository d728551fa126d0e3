"""LOG_FORMAT=json: every line the container writes on stderr as one JSON
object. entry-point.sh puts this relay between its stderr and the
container's (lib/common.sh, flaskbox_json_logs), so the entry-point's own
lines, the hooks, nginx's error log, uWSGI and the app all pass through it:
nginx cannot write its error log as JSON, and uWSGI's log encoders miss its
first lines and cannot tell a traceback from other lines.

Each line becomes {"time", "level", "source", "message"}; source is
`flaskbox` (the entry-point and flaskbox's Python), `nginx` (its error log:
the level is nginx's), `python` (a traceback, whole, in "traceback", with
its last line as the message) or `uwsgi` (uWSGI's own lines and anything
else the app prints). A line that is already a JSON object passes as it is.

A flaskbox line that ends with log.STACK_FOLLOWS (a handler past
REQUEST_TIMEOUT: request/stacks.py) brings the stack under it, indented,
in the same write: the stack goes in that line's record, in "traceback".
It ends at the first line not indented, or when the pipe has nothing more
at once: a write of that size reaches a pipe whole.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
from datetime import UTC, datetime

from ..log import STACK_FOLLOWS

FLASKBOX = re.compile(r"^flaskbox: (?:(error|warning): )?(.*)$")
NGINX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[([a-z]+)\] \d+#\d+: (.*)$")
TRACEBACK = "Traceback (most recent call last):"
# Lines inside a traceback that are not indented (chained exceptions).
CHAINED = ("During handling of the above exception", "The above exception was the direct cause", TRACEBACK)


def record(level: str, source: str, message: str, **extra: str) -> str:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"time": now, "level": level, "source": source, "message": message, **extra},
                      ensure_ascii=False)


def already_json(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def encode(line: str) -> str:
    """One line that is not part of a traceback."""
    if already_json(line):
        return line
    found = FLASKBOX.match(line)
    if found:
        return record(found.group(1) or "info", "flaskbox", found.group(2))
    found = NGINX.match(line)
    if found:
        return record(found.group(1), "nginx", found.group(2))
    return record("info", "uwsgi", line)


class Relay:
    """Lines in, JSON objects out; a traceback's lines are held until its
    last (the exception, not indented) and written as one object."""

    def __init__(self, out):
        self.out = out
        self.traceback: list[str] | None = None
        # A flaskbox line whose stack follows, and the stack's lines so far.
        self.stack: list[str] | None = None

    def line(self, line: str) -> None:
        if self.stack is not None:
            if line.startswith("  "):
                self.stack.append(line)
                return
            self.flush_stack()
        if self.traceback is not None:
            self.traceback.append(line)
            if line and not line[0].isspace() and not line.startswith(CHAINED):
                self.flush()
            return
        if line == TRACEBACK:
            self.traceback = [line]
            return
        if line.endswith(STACK_FOLLOWS) and FLASKBOX.match(line):
            self.stack = [line]
            return
        self.write(encode(line))

    def flush(self) -> None:
        """The traceback held so far, as one object (at its end, or at EOF)."""
        self.flush_stack()
        if self.traceback is None:
            return
        lines, self.traceback = self.traceback, None
        self.write(record("error", "python", lines[-1], traceback="\n".join(lines)))

    def flush_stack(self) -> None:
        """A flaskbox line and the stack under it, as one object."""
        if self.stack is None:
            return
        (first, *lines), self.stack = self.stack, None
        found = FLASKBOX.match(first)
        self.write(record(found.group(1) or "info", "flaskbox", found.group(2), traceback="\n".join(lines)))

    def write(self, text: str) -> None:
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except OSError:
            pass  # the container's stderr is gone: nothing to tell


# Bytes read from the pipe at a time. A relay that is killed loses what it
# had read and not yet written: 8 KB, as Python read before 3.14, whose
# default of 128 KB lost some 2000 lines of an app flooding stderr
# (tests/test_supervision.py).
READ_SIZE = 8192


def main() -> None:
    relay = Relay(sys.stdout)
    stdin = sys.stdin.fileno()
    more = select.poll()
    more.register(stdin, select.POLLIN)
    rest = bytearray()  # a line not yet ended
    while chunk := os.read(stdin, READ_SIZE):
        end = chunk.rfind(b"\n")
        if end < 0:
            rest += chunk
            continue
        rest += chunk[:end]
        for raw in bytes(rest).split(b"\n"):
            take(relay, raw)
        rest = bytearray(chunk[end + 1:])
        if relay.stack is not None and not rest and not more.poll(0):
            relay.flush_stack()  # its write has all been read
    if rest:
        take(relay, bytes(rest))
    relay.flush()


def take(relay: Relay, raw: bytes) -> None:
    try:
        relay.line(raw.decode("utf-8", "replace").rstrip("\r"))
    except Exception as exc:  # noqa: BLE001 (a relay that stops would block every writer)
        relay.write(record("error", "flaskbox", f"log relay: {exc!r}"))
