"""The retiring pool's watch (flaskbox/generations.py), in process: a master
that ends while its pool is being read is reported gone, never idle, so
that a killed generation's requests are logged as cut, not as finished."""

from __future__ import annotations

import os
import signal
import subprocess

from flaskbox import generations
from flaskbox.layout import Generation


def test_a_master_killed_during_the_reads_is_gone_not_idle(tmp_path, monkeypatch):
    master = subprocess.Popen(["sleep", "60"])
    try:
        def killed_while_read(generation, pid):
            os.kill(pid, signal.SIGKILL)
            master.wait()
            return 0

        monkeypatch.setattr(generations, "queued", killed_while_read)
        assert generations.in_flight(Generation(tmp_path), master.pid) is None
    finally:
        master.kill()
        master.wait()


def test_a_master_gone_between_polls_reports_what_it_held_when_last_seen(tmp_path, monkeypatch):
    master = subprocess.Popen(["sleep", "60"])
    polls = []
    try:
        def two_then_killed(generation, pid):
            polls.append(pid)
            if len(polls) == 2:
                os.kill(pid, signal.SIGKILL)
                master.wait()
                return 0
            return 2

        monkeypatch.setattr(generations, "queued", two_then_killed)
        monkeypatch.setattr(generations, "POLL_EVERY", 0.01)
        assert generations.wait_idle(Generation(tmp_path), master.pid, 5) == (generations.MASTER_GONE, 2)
    finally:
        master.kill()
        master.wait()


def test_a_live_pool_holding_nothing_is_idle(tmp_path, monkeypatch):
    master = subprocess.Popen(["sleep", "60"])
    try:
        monkeypatch.setattr(generations, "queued", lambda generation, pid: 0)
        assert generations.wait_idle(Generation(tmp_path), master.pid, 5) == (0, 0)
    finally:
        master.kill()
        master.wait()
