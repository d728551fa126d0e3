"""A handler past REQUEST_TIMEOUT says where it waits: its 504 line (or a
blocked gevent loop's) names the app's line that waits, with the request
id, and the stack follows, once, bounded; with LOG_FORMAT=json the stack is
in that line's record. Sync workers (a lock, a socket that never answers),
gevent's cancel, gevent's blocked loop (a C call, CPU work); the formatting,
the bounds and the relay's grouping in process."""

import io
import json
import re
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from flaskbox.log import BLOCK_MOST, STACK_FOLLOWS
from flaskbox.request import stacks
from flaskbox.sidecars.jsonlog import Relay
from helpers import docker

TIMEOUT = 2
FIXTURE = Path(__file__).resolve().parent / "fixture_app" / "stuck.py"
FUNCTIONS = {"lock": "stuck_on_lock", "socket": "stuck_on_socket", "blocked": "stuck_blocking_the_loop",
             "spin": "stuck_spinning"}


def waiting_line(what: str) -> tuple[int, str]:
    """The number and the text of the fixture's line marked `waits: what`."""
    for number, line in enumerate(FIXTURE.read_text().splitlines(), 1):
        if f"waits: {what}" in line:
            return number, line.strip()
    raise AssertionError(f"no line marked `waits: {what}` in {FIXTURE}")


def place(what: str) -> str:
    return f"/app/stuck.py, line {waiting_line(what)[0]}, in {FUNCTIONS[what]}"


def stack_under(log: str, head: str) -> list[str]:
    """The indented lines right under the one line of `log` that is `head`."""
    lines = log.splitlines()
    found = [index for index, line in enumerate(lines) if line == head]
    assert len(found) == 1, f"{len(found)} lines are {head!r}:\n{log[-4000:]}"
    stack = []
    for line in lines[found[0] + 1:]:
        if not line.startswith("  "):
            break
        stack.append(line)
    return stack


def assert_names_the_line(log: str, stack: list[str], what: str) -> None:
    """The stack has the app's frame that waits, and the log has it once."""
    number, source = waiting_line(what)
    frame = f'  File "/app/stuck.py", line {number}, in {FUNCTIONS[what]}'
    assert frame in stack and f"    {source}" in stack, "\n".join(stack)
    assert log.count(f'"/app/stuck.py", line {number},') == 1, log[-4000:]
    assert len(stack) <= 2 * stacks.MOST_FRAMES + stacks.MOST_FRAMES + 1


def stuck_in_parallel(container, whats: list[str]) -> dict[str, tuple[int, str]]:
    """GET /stuck/<what> for each at once, each with its own request id:
    what -> (status, id)."""
    results = {}

    def one(what: str) -> None:
        rid = uuid.uuid4().hex
        results[what] = (container.request(f"/stuck/{what}", headers={"X-Request-ID": rid},
                                           timeout=TIMEOUT + 20).status, rid)

    threads = [threading.Thread(target=one, args=(what,)) for what in whats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT + 30)
    return results


def timed_out_head(what: str, rid: str, answered: str) -> str:
    return (f"flaskbox: GET /stuck/{what} ran past REQUEST_TIMEOUT ({TIMEOUT} s): {answered}; "
            f"request id={rid} waits at {place(what)}; {STACK_FOLLOWS}")


@pytest.mark.parametrize("worker_class, answered", [("sync", "answered 504"),
                                                     ("gevent", "cancelled, answered 504")])
def test_a_stuck_handler_names_the_line_it_waits_on(containers, fixture_image, worker_class, answered):
    # One process: both handlers wait in it at once (sync: on its two threads).
    # (ADAPTIVE_THREADS off: a new worker's limit of one would keep the second in line.)
    threads = {"UWSGI_THREADS": "2", "ADAPTIVE_THREADS": "0"} if worker_class == "sync" else {}
    c = containers.serving(image=fixture_image["image"], env={
        "APP_MODULE": "stuck:app", "WORKER_CLASS": worker_class, "REQUEST_TIMEOUT": str(TIMEOUT),
        "UWSGI_PROCESSES": "1", **threads})
    results = stuck_in_parallel(c, ["lock", "socket"])
    assert {status for status, _ in results.values()} == {504}, (results, c.logs()[-3000:])
    heads = {what: timed_out_head(what, rid, answered) for what, (_, rid) in results.items()}
    c.wait_until(lambda: all(head in c.logs() for head in heads.values()), "both stacks in the log")
    log = c.logs()
    for what, head in heads.items():
        assert_names_the_line(log, stack_under(log, head), what)


def test_a_blocked_gevent_loop_names_the_line_that_blocks_it(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"], env={
        "APP_MODULE": "stuck:app", "WORKER_CLASS": "gevent", "REQUEST_TIMEOUT": str(TIMEOUT),
        "UWSGI_PROCESSES": "1"})
    # A C call gevent does not patch, then CPU work: each takes its process
    # down (nginx answers 502), and the master forks a fresh one.
    for what in ("blocked", "spin"):
        rid = uuid.uuid4().hex
        assert c.request(f"/stuck/{what}", headers={"X-Request-ID": rid}, timeout=30).status == 502
        tail = (f" GET /stuck/{what} (request id={rid}) blocks it at {place(what)}; {STACK_FOLLOWS}")
        c.wait_until(lambda tail=tail: tail in c.logs(), f"the stack of /stuck/{what}")
        log = c.logs()
        (head,) = [line for line in log.splitlines() if line.endswith(tail)]
        assert re.match(r"flaskbox: gevent's loop in worker pid \d+ has been blocked for \d+ s, past "
                        rf"REQUEST_TIMEOUT \({TIMEOUT} s\): .*; killing the worker, and with it its "
                        "requests;", head), head
        assert_names_the_line(log, stack_under(log, head), what)
        c.wait_http("/")


def test_the_json_record_of_a_timeout_holds_its_stack(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"], env={
        "APP_MODULE": "stuck:app", "LOG_FORMAT": "json", "REQUEST_TIMEOUT": str(TIMEOUT)})
    rid = uuid.uuid4().hex
    assert c.request("/stuck/lock", headers={"X-Request-ID": rid}, timeout=TIMEOUT + 20).status == 504
    message = timed_out_head("lock", rid, "answered 504").removeprefix("flaskbox: ")

    def record():
        err = [json.loads(line) for line in docker("logs", c.name, check=False).stderr.splitlines()]
        return [entry for entry in err if entry.get("message") == message] and err

    err = c.wait_until(record, "the timeout's record")
    (entry,) = [entry for entry in err if entry.get("message") == message]
    assert entry["source"] == "flaskbox" and entry["level"] == "info"
    stack = entry["traceback"].split("\n")
    assert all(line.startswith("  ") for line in stack), stack
    # The stack is in that record alone, not in records of its own lines.
    needle = f'"/app/stuck.py", line {waiting_line("lock")[0]},'
    assert sum(any(needle in str(value) for value in other.values()) for other in err) == 1
    number, source = waiting_line("lock")
    assert f'  File "/app/stuck.py", line {number}, in stuck_on_lock' in stack and f"    {source}" in stack


# --- in process: the stack's text and bounds, the relay's grouping --------

def frames_of(count: int, app_at: tuple[int, ...] = ()) -> list[stacks.Frame]:
    """A stack of `count` library frames, outermost first, with the app's at
    the indices in `app_at`."""
    return [("/app/views.py" if index in app_at else f"/opt/venv/lib/site-packages/lib{index}.py",
             index + 1, f"function{index}") for index in range(count)]


def test_the_first_line_names_the_apps_innermost_frame():
    frames = frames_of(12, app_at=(5, 7))
    text = stacks.block("GET / ran past", frames, "it waits")
    head, *stack = text.splitlines()
    assert head == f"GET / ran past; it waits at /app/views.py, line 8, in function7; {STACK_FOLLOWS}"
    # Short enough: every frame, in Python's order (most recent call last).
    assert [line for line in stack if line.startswith("  File")] == [
        f'  File "{file}", line {line}, in {function}' for file, line, function in frames]


def test_a_stack_without_the_apps_code_names_its_innermost_frame():
    text = stacks.block("GET / ran past", frames_of(3), "it waits")
    assert text.startswith("GET / ran past; it waits at /opt/venv/lib/site-packages/lib2.py, line 3, in "
                           "function2;")


def test_a_library_inside_app_is_not_the_apps_code():
    assert stacks.apps("/app/stuck.py") and stacks.apps("/app/pkg/views.py")
    assert not stacks.apps("/app/.venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py")
    assert not stacks.apps("/application/x.py")


def test_a_deep_stack_keeps_the_innermost_and_the_apps_frames_and_counts_the_rest():
    frames = frames_of(3000, app_at=(1500,))
    text = stacks.block("GET / ran past", frames, "it waits")
    stack = text.splitlines()[1:]
    shown = [int(re.search(r"line (\d+),", line)[1]) - 1 for line in stack if line.startswith("  File")]
    assert len(shown) == stacks.MOST_FRAMES
    assert 1500 in shown and shown[-stacks.INNERMOST:] == list(range(3000 - stacks.INNERMOST, 3000))
    left_out = [int(re.match(r"  \[(\d+) frames? left out\]$", line)[1]) for line in stack
                if line.startswith("  [")]
    assert sum(left_out) + len(shown) == 3000 and stack[0].startswith("  [")
    assert len(("flaskbox: " + text).encode()) <= BLOCK_MOST


def test_huge_lines_are_cut_and_the_block_fits_one_write(tmp_path):
    source = tmp_path / "views.py"
    source.write_text("x = 1\n" * 5 + "data = '" + "é" * 100_000 + "'\n")
    frames = [(str(source), 6, "f" * 5000)] * 40
    text = stacks.block("GET /" + "€" * 9000 + " ran past", frames, "it waits", app_dir=str(tmp_path))
    head, *stack = text.splitlines()
    assert head.endswith(f"… [cut]; {STACK_FOLLOWS}")
    assert all(len(line) < stacks.LINE_MOST + 30 for line in stack), max(map(len, stack))
    file_line = f'  File "{source}", line 6, in {"f" * 5000}'
    most = stacks.LINE_MOST
    assert stack[-2] == f"{file_line[:most]}… [{len(file_line) - most} more characters]"
    source_line = "data = '" + "é" * 100_000 + "'"  # stripped, as Python prints it
    assert stack[-1] == f"    {source_line[:most]}… [{len(source_line) - most} more characters]"
    assert len(("flaskbox: " + text).encode()) <= BLOCK_MOST
    assert stack[0] == f"  [{40 - (len(stack) - 1) // 2} frames left out]"  # cut, and a few frames shown


def test_the_request_is_named_within_bounds():
    class Request:
        what = "GET /" + "a" * 9000

    assert stacks.named(Request()) == "GET /" + "a" * (stacks.WHAT_MOST - 5) + "… [8705 more characters]"


def test_a_running_threads_stack_is_read_at_its_line():
    held = threading.Lock()
    held.acquire()
    waiting = threading.Event()

    def wait_on_it():
        waiting.set()
        held.acquire()  # the line the stack must name

    thread = threading.Thread(target=wait_on_it, daemon=True)
    thread.start()
    waiting.wait(5)
    number = wait_on_it.__code__.co_firstlineno + 2
    # Until the thread sits in acquire(): polled, the line above comes first.
    for _ in range(500):
        frames = stacks.walk(stacks.thread_frame(thread.ident))
        if frames and frames[-1][1] == number:
            break
        time.sleep(0.01)
    held.release()
    assert frames[-1] == (__file__, number, "wait_on_it")
    text = stacks.block("GET / ran past", frames, "it waits", app_dir=str(Path(__file__).parent))
    assert f"it waits at {__file__}, line {number}, in wait_on_it;" in text
    frame = f'  File "{__file__}", line {number}, in wait_on_it\n'
    assert frame + "    held.acquire()  # the line the stack must name\n" in text


def test_the_request_id_ties_the_line_to_the_access_log():
    assert stacks.waits({"HTTP_X_REQUEST_ID": "abc-1"}) == "request id=abc-1 waits"
    assert stacks.waits({}) == "it waits"


def test_say_writes_one_block_and_a_line_alone_without_a_stack(capsys):
    stacks.say("GET / ran past", frames_of(2), "it waits")
    stacks.say("GET /gone ran past", [], "it waits")
    assert capsys.readouterr().err.splitlines() == [
        "flaskbox: GET / ran past; it waits at /opt/venv/lib/site-packages/lib1.py, line 2, in function1; "
        + STACK_FOLLOWS,
        '  File "/opt/venv/lib/site-packages/lib0.py", line 1, in function0',
        '  File "/opt/venv/lib/site-packages/lib1.py", line 2, in function1',
        "flaskbox: GET /gone ran past"]


def relayed(lines: list[str]) -> list[dict]:
    out = io.StringIO()
    relay = Relay(out)
    for line in lines:
        relay.line(line)
    relay.flush()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_relay_puts_the_stack_in_its_lines_record():
    head = f"flaskbox: GET /x ran past REQUEST_TIMEOUT (2 s): answered 504; it waits at a; {STACK_FOLLOWS}"
    stack = ['  File "/app/app.py", line 3, in view', "    lock.acquire()", "  [2 frames left out]"]
    records = relayed([head, *stack, "flaskbox: GET /x still holds its thread", "plain"])
    assert [record["source"] for record in records] == ["flaskbox", "flaskbox", "uwsgi"]
    assert records[0]["message"] == head.removeprefix("flaskbox: ") and records[0]["level"] == "info"
    assert records[0]["traceback"] == "\n".join(stack)
    assert "traceback" not in records[1]


def test_the_relay_ends_a_stack_when_its_pipe_is_drained(monkeypatch, tmp_path):
    # What main() does between reads: a stack whose write has all been read
    # goes out at once, not when the next line comes (it may not, for long).
    import os

    from flaskbox.sidecars import jsonlog
    read, write = os.pipe()
    os.write(write, f"flaskbox: GET /x ran past; it waits at a; {STACK_FOLLOWS}\n  File \"a\"\n".encode())
    out = tmp_path / "out"
    with open(out, "w") as sink:
        monkeypatch.setattr(sys, "stdout", sink)
        monkeypatch.setattr(sys, "stdin", os.fdopen(read, "rb"))
        done = threading.Thread(target=jsonlog.main, daemon=True)
        done.start()
        for _ in range(500):
            if out.read_text():
                break
            time.sleep(0.01)
        written = out.read_text()
        os.close(write)
        done.join(5)
    (record,) = [json.loads(line) for line in written.splitlines()]
    assert record["traceback"] == '  File "a"' and record["message"].endswith(STACK_FOLLOWS)


@pytest.mark.parametrize("page, phrases", [
    ("docs/production.md", ("{frames} frames at most", "cut at {line} characters", "under {block} bytes")),
    ("docs/zh-CN/production.md", ("最多 {frames} 帧", "截断在 {line} 个字符", "不超过 {block} 字节"))])
def test_the_docs_state_the_bounds_the_code_has(page, phrases):
    text = " ".join((Path(__file__).resolve().parents[1] / page).read_text().split())
    bounds = {"frames": stacks.MOST_FRAMES, "line": stacks.LINE_MOST, "block": BLOCK_MOST}
    for phrase in phrases:
        assert phrase.format(**bounds) in text, phrase
