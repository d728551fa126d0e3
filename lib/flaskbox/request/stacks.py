"""Where a handler past REQUEST_TIMEOUT waits: the stack of its thread (or,
with gevent, its greenlet) at that moment, under the log line that says
so, once per request, as importing.py shows an import's.

    flaskbox: GET /report ran past REQUEST_TIMEOUT (30 s): answered 504; request id=4f1c waits at
    /app/app.py, line 12, in report; its stack, most recent call last:
      [6 frames left out]
      File "/app/app.py", line 12, in report
        rows = db.execute(QUERY).fetchall()
      File "/opt/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line 1418, in execute
        return meth(
      (... 13 more of the library's frames, down to where it waits:)
      File "/usr/lib/python3.11/socket.py", line 720, in readinto
        return self._sock.recv_into(b)

The app's frames come first: the line names the innermost frame in /app
(a library's folder inside it, a venv's site-packages, is not the app's),
else the innermost of all. Then the stack as Python prints it. It is
bounded: at most MOST_FRAMES frames, each line cut at LINE_MOST
characters, the whole under log.BLOCK_MOST bytes, and written in one
write (log.log_block). The frames kept are the innermost (what it waits
in), then the app's, then the others nearest the wait; each gap says how
many frames it leaves out.

Only a timeout that fires comes here: the usual request pays nothing.
"""

from __future__ import annotations

import linecache
import sys

from ..layout import APP_DIR
from ..log import BLOCK_MOST, PREFIX, STACK_FOLLOWS, log, log_block

# (file, line, function) of one frame.
Frame = tuple[str, int, str]

MOST_FRAMES = 16
# Kept first, whatever else is: the frames it waits in.
INNERMOST = 4
LINE_MOST = 200
# How far a stack is walked: a runaway recursion's depth (Python's limit
# is 1000 by default) is not walked further.
WALK_MOST = 10_000
# The request, as the first line names it (a URI may be kilobytes long).
WHAT_MOST = 300
# The first line's bytes at most, so that the stack has the rest of the block.
HEAD_MOST = 1500


def thread_frame(ident: int):
    """The frame a thread runs now (with gevent: the running greenlet's),
    or None once it has ended."""
    return sys._current_frames().get(ident)


def walk(frame) -> list[Frame]:
    """A running stack, outermost frame first."""
    frames = []
    while frame is not None and len(frames) < WALK_MOST:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno or 0, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return frames


def unwound(tb) -> list[Frame]:
    """The stack an exception was raised on (gevent.Timeout's, raised where
    the handler waited), outermost first."""
    frames = []
    while tb is not None and len(frames) < WALK_MOST:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def clip(text: str, most: int = LINE_MOST) -> str:
    if len(text) <= most:
        return text
    return f"{text[:most]}… [{len(text) - most} more characters]"


def request_id(environ: dict) -> str:
    """nginx's request id (X-Request-ID), as the access log's line has it."""
    return clip(environ.get("HTTP_X_REQUEST_ID", ""), 128)


def apps(path: str, app_dir: str = str(APP_DIR)) -> bool:
    return path.startswith(app_dir + "/") and "-packages/" not in path


def place(frame: Frame) -> str:
    return clip(f"{frame[0]}, line {frame[1]}, in {frame[2]}")


def lines_of(frame: Frame) -> str:
    """One frame as Python's traceback prints it."""
    file, line, function = frame
    text = clip(f'  File "{file}", line {line}, in {function}') + "\n"
    source = linecache.getline(file, line).strip()
    return text + (f"    {clip(source)}\n" if source else "")


def gap(count: int) -> str:
    return f"  [{count} frame{'s' if count != 1 else ''} left out]\n"


def chosen(frames: list[Frame], ours: list[bool], room: int) -> dict[int, str]:
    """The frames shown (index: their lines), within MOST_FRAMES and `room`
    bytes: the innermost, then the app's, then the rest, nearest the wait
    first. Each may bring one gap line with it (room is kept for it)."""
    count = len(frames)
    order = sorted(range(count), key=lambda i: (0 if i >= count - INNERMOST else 1 if ours[i] else 2, -i))
    shown: dict[int, str] = {}
    for tried, index in enumerate(order):
        if len(shown) == MOST_FRAMES or tried == 2 * MOST_FRAMES:
            break
        text = lines_of(frames[index])
        cost = len(text.encode("utf-8", "backslashreplace")) + len(gap(count))
        if cost > room:
            continue  # a longer frame does not fit; a shorter one may
        shown[index] = text
        room -= cost
    return shown


def stack_text(frames: list[Frame], room: int, app_dir: str = str(APP_DIR)) -> str:
    """The stack's lines, most recent call last, within `room` bytes."""
    ours = [apps(frame[0], app_dir) for frame in frames]
    # Each frame shown keeps room for the gap before it; this, for the one after the last.
    shown = chosen(frames, ours, room - len(gap(len(frames))))
    parts, last = [], -1
    for index in sorted(shown):
        if index > last + 1:
            parts.append(gap(index - last - 1))
        parts.append(shown[index])
        last = index
    if last < len(frames) - 1:
        parts.append(gap(len(frames) - 1 - last))
    return "".join(parts)


def where(frames: list[Frame], app_dir: str = str(APP_DIR)) -> str:
    """The innermost frame of the app's own code, else the innermost."""
    for frame in reversed(frames):
        if apps(frame[0], app_dir):
            return place(frame)
    return place(frames[-1])


def block(message: str, frames: list[Frame], subject: str, app_dir: str = str(APP_DIR)) -> str:
    """`message`, then where `subject` waits and the stack, as one text
    under log.BLOCK_MOST bytes."""
    head = f"{message}; {subject} at {where(frames, app_dir)}; ".encode("utf-8", "backslashreplace")
    if len(head) > HEAD_MOST:
        head = head[:HEAD_MOST].decode("utf-8", "ignore").encode() + "… [cut]; ".encode()
    head += f"{STACK_FOLLOWS}\n".encode()
    room = BLOCK_MOST - len(PREFIX) - len(head)
    return head.decode() + stack_text(frames, room, app_dir)


def say(message: str, frames: list[Frame], subject: str) -> None:
    """The log line with the stack under it, or, with no stack to show (the
    thread has ended meanwhile), the line alone."""
    if frames:
        log_block(block(message, frames, subject))
    else:
        log(message)


def named(request) -> str:
    """The request, as a stack's first line names it: bounded."""
    return clip(request.what, WHAT_MOST)


def waits(environ: dict) -> str:
    """Who waits, tied to the access log's line by its id."""
    rid = request_id(environ)
    return f"request id={rid} waits" if rid else "it waits"


def blocks(request) -> str:
    """What blocks gevent's loop: the request whose handler runs on it."""
    if request is None:
        return "the code that blocks it runs"
    rid = request_id(request.environ)
    return f"{named(request)}{f' (request id={rid})' if rid else ''} blocks it"


def serving(run, frame):
    """The request.Request whose handler runs on this stack (a blocked
    gevent loop's: which request blocks it, for guards.LoopWatch), else
    None: read from the frame of `run` (serve.Serve.run's code), so that
    no request pays for a registry."""
    while frame is not None:
        if frame.f_code is run:
            return frame.f_locals.get("request")
        frame = frame.f_back
    return None
