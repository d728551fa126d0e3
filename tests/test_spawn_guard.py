"""forks.SpawnGuard's end of a pool that cannot stay up, in process: the
workers still up end as at a stop (SIGHUP, uWSGI's graceful stop of one
worker) before the master exits, so that their requests and the app's exit
handlers run to their end; past what a stop leaves idle workers they are
killed, and the log names the budget. Stand-in workers are child processes
of this test; the container test (test_worker_pool.py) runs uWSGI's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from flaskbox.pool import forks

# A worker's graceful stop: its exit handler takes `flush` s, then a mark.
WORKER = """
import signal, sys, time
def stop(signum, frame):
    time.sleep({flush})
    open({mark!r}, "w").write("flushed")
    sys.exit(0)
signal.signal(signal.SIGHUP, stop if {graceful} else signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


class NoHost:
    def oom_kills(self):
        return None


def worker(tmp_path, name: str, flush: float, graceful: bool = True) -> subprocess.Popen:
    mark = str(tmp_path / name)
    child = subprocess.Popen([sys.executable, "-c", WORKER.format(flush=flush, mark=mark, graceful=graceful)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    return child


def give_up(tmp_path, monkeypatch, pids: list[int], stop_timeout: int) -> list[int]:
    exits: list[int] = []
    monkeypatch.setattr(forks.os, "_exit", exits.append)
    guard = forks.SpawnGuard(str(tmp_path / "accepting"), 0, host=NoHost(), stop_timeout=stop_timeout,
                             workers=lambda: pids)
    guard.after_fork()  # one fork past the limit: none of them started
    return exits


def test_the_workers_still_up_end_as_at_a_stop_before_the_master_gives_up(tmp_path, monkeypatch, capsys):
    serving = [worker(tmp_path, f"worker-{number}", flush=0.5) for number in range(2)]
    started = time.monotonic()
    exits = give_up(tmp_path, monkeypatch, [child.pid for child in serving], stop_timeout=10)
    took = time.monotonic() - started
    assert exits == [3]
    # The exit handlers ran to their end, and the master waited for them.
    assert [(tmp_path / f"worker-{number}").read_text() for number in range(2)] == ["flushed"] * 2
    assert 0.5 <= took < 3, took
    said = capsys.readouterr().err
    assert "none of them started" in said and "past their budget" not in said, said


def test_a_worker_past_the_budget_is_killed_and_the_log_names_it(tmp_path, monkeypatch, capsys):
    flushing = worker(tmp_path, "flushing", flush=0.2)
    stuck = worker(tmp_path, "stuck", flush=0, graceful=False)
    started = time.monotonic()
    # STOP_TIMEOUT 4: 2 s for the workers (less the stop's margin and its
    # masters' second).
    exits = give_up(tmp_path, monkeypatch, [flushing.pid, stuck.pid], stop_timeout=4)
    took = time.monotonic() - started
    assert exits == [3]
    assert (tmp_path / "flushing").read_text() == "flushed"
    assert stuck.wait(5) == -signal.SIGKILL
    assert 2 <= took < 3, took
    said = capsys.readouterr().err
    assert (f"worker pid {stuck.pid} still ran its requests or the app's exit handlers 2 s after the pool "
            "gave up, past their budget (STOP_TIMEOUT 4 s, 2 s of it: what a stop leaves idle workers); "
            "killing it" in said), said
