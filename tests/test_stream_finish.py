"""A streamed answer that can finish within the budget finishes, at a stop
and at a reload (issue 60): an LLM API's tokens, a workflow's progress,
each a finite event stream, by GET or POST, with sync and gevent workers.
Beside them, event streams that never end (a browser's feed) are ended
cleanly a second before the budget's end (nginx's drain at a stop,
RELOAD_GRACE at a reload), so that no stop is held past STOP_TIMEOUT; the
log counts both, says nothing of reconnecting, and no traceback of the
image's own appears. The worker's side in process: test_stream_stops.py."""

from __future__ import annotations

import json
import re
import time

import pytest

from containers import ContainerFactory
from helpers import docker
from sse import OpenStream

# Each answer: parts 0.5 s apart, then [DONE] (tests/apps/realtime): 3 s
# at a stop, which leaves them 4 s; 10 s at a reload, whose grace begins
# only once the new code serves (its import first: up to 3 s on a loaded
# machine), so that they are still under way then, and still end within
# its 12 s.
PARTS = {"the stop": 6, "the reload": 20}
GRACE = 12


def answer_events(stream) -> list:
    found = []
    for chunk in stream.chunks:
        for line in chunk.data.decode().split("\n"):
            if line.startswith("data: "):
                found.append(line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
    return found


def tallies(logs: str, occasion: str) -> tuple[int, int, int]:
    """Counted when told, finished and ended, summed over the workers' lines."""
    counted = finished = ended = 0
    for line in logs.splitlines():
        if f"event stream(s) open at {occasion}" in line:
            finished += int(re.search(r": (\d+) finished", line).group(1))
            more = re.search(r", (\d+) ended unfinished", line)
            ended += int(more.group(1)) if more else 0
        elif re.search(rf"pid \d+: {occasion}: .* (\d+) event stream\(s\) may finish", line):
            counted += int(re.search(r"(\d+) event stream\(s\) may finish", line).group(1))
    return counted, finished, ended


@pytest.mark.parametrize("occasion", ["the stop", "the reload"])
@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_finite_answers_finish_and_endless_feeds_end_cleanly_in_the_budget(app_images, worker_class, occasion,
                                                                           figure):
    factory = ContainerFactory(app_images("realtime"))
    try:
        c = factory.run(env={"WORKER_CLASS": worker_class, "RELOAD_GRACE": str(GRACE)})
        c.wait_http("/page")
        # Six clients, each from an address of its own (one client's
        # streams share what it may hold: CLIENT_STREAM_SHARE).
        path = f"/answer?parts={PARTS[occasion]}"
        answers = [OpenStream(c.port, path, source=f"127.0.8.{n + 1}") for n in range(3)]
        answers += [OpenStream(c.port, path, body=json.dumps({"prompt": f"q{n}"}).encode(),
                               source=f"127.0.9.{n + 1}") for n in range(3)]
        feeds = [OpenStream(c.port, "/forever").first() for _ in range(2)]
        for stream in answers:
            stream.first()  # under way: its first part came
        began = time.monotonic()
        if occasion == "the stop":
            docker("stop", "--time", "10", c.name, timeout=40)
        else:
            docker("kill", "-s", "HUP", c.name)
        got = [stream.finish() for stream in answers]
        answered = time.monotonic() - began
        ended = [stream.finish() for stream in feeds]
        feeds_ended, feeds_ended_at = time.monotonic() - began, time.time()
        if occasion == "the reload":
            c.wait_until(lambda: "the old code (generation 1) has finished its requests and stopped"
                         in c.logs(), "the old code stopped", timeout=GRACE + 10)
            # RELOAD_GRACE counts from there, whatever the import took.
            feeds_ended = feeds_ended_at - c.logged_at("SIGHUP: uWSGI serves the app's new code")
        else:
            assert c.wait_exit() == 0, c.logs()
        logs = c.logs()
    finally:
        factory.cleanup()
    figure(f"{worker_class}, {occasion}: 6 answers whole, seconds", f"{answered:.2f}")
    figure(f"{worker_class}, {occasion}: endless feeds ended, seconds (at the reload: from when the new code "
           "served)", f"{feeds_ended:.2f}")
    for n, stream in enumerate(got):
        events = answer_events(stream)
        # Whole: every part, in order, then [DONE], then the last chunk.
        parts = [event["part"] for event in events[:-1]]
        assert stream.complete and parts == list(range(PARTS[occasion])), (n, events, logs)
        assert events[-1] == "[DONE]" and (n < 3 or events[0]["prompt"] == f"q{n - 3}"), events
    assert all(stream.complete for stream in ended), (ended, logs)
    # The feeds end a second before the budget's end: nginx's 5 s drain at
    # a stop (the stop itself took less than docker's 10 s), RELOAD_GRACE at
    # a reload, counted from when the new code serves (the log's stamp).
    if occasion == "the stop":
        assert 3 < feeds_ended < 6.5, (feeds_ended, logs)
    else:
        assert GRACE - 2 < feeds_ended < GRACE + 0.5, (feeds_ended, logs)
    # Every stream counted when the workers were told is accounted for: the
    # feeds ended, the answers (those not over yet: at least the three
    # asked last) finished.
    counted, finished, ended = tallies(logs, occasion)
    assert ended == 2 and finished >= 3 and counted == finished + ended, logs
    assert "Traceback" not in logs and "reconnect" not in logs, logs
