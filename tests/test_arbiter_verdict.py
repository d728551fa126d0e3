"""The retirement's verdict is exact: a generation whose master dies while
its pool holds requests is a cut, said with what it held, whether the
master dies before, during or after its pool is read; a pool that held
nothing is never called cut, and one that held something never "finished".

Two levels, both in process: kernel.holds against real processes (a
master killed during the reads is gone, never idle: the race of issue 47,
where a dying master's pool read as empty), and the arbiter's verdict over
every interleaving of a kill with the readings (tests/arbiter_fakes.py).
The container test: test_reload_grace.py's killed-master test."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from arbiter_fakes import FakeSystem, lines
from flaskbox.arbiter import kernel
from flaskbox.arbiter.generation import READ_EVERY
from flaskbox.layout import Generation

# --- kernel.holds: a reading counts only if the master ran throughout ------------------------------


@pytest.fixture
def master():
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def killed(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # a zombie now, not yet reaped


def test_a_master_dead_before_the_reads_is_not_read(tmp_path, master, monkeypatch):
    killed(master)
    monkeypatch.setattr(kernel, "queued", lambda generation, pid: pytest.fail("read a dead master's pool"))
    assert kernel.holds(Generation(tmp_path), master.pid) is None


def test_a_master_killed_during_the_reads_is_gone_not_idle(tmp_path, master, monkeypatch):
    def dying(generation, pid):
        killed(master)
        return 0  # what a dying master shows: its sockets closed, its workers handed on

    monkeypatch.setattr(kernel, "queued", dying)
    assert kernel.holds(Generation(tmp_path), master.pid) is None


def test_a_master_killed_after_the_reads_leaves_them_valid(tmp_path, master, monkeypatch):
    monkeypatch.setattr(kernel, "queued", lambda generation, pid: 2)
    assert kernel.holds(Generation(tmp_path), master.pid) == 2
    killed(master)
    assert kernel.holds(Generation(tmp_path), master.pid) is None


@pytest.mark.parametrize("state, flags, running", [
    ("S", 0x400100, True),
    ("T", 0x400100, True),        # stopped (SIGSTOP): still there, its pool readable
    ("S", 0x400104, False),       # PF_EXITING: closing its files, handing its workers on
    ("Z", 0x40040C, False),
])
def test_exiting_is_read_from_the_flags(state, flags, running):
    stat = f"17 (flaskbox uWSGI (master)) {state} 1 17 17 0 -1 {flags} 0 0 0 0"
    assert kernel.stat_running(stat) is running


# --- the arbiter's verdict over the interleavings --------------------------------------------------

def retiring(tmp_path, requests: list[float]) -> FakeSystem:
    """Generation 1 holding requests of these lengths, retiring: generation
    2 serves."""
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    for seconds in requests:
        system.master(1).request(seconds)
    system.send(system.clock, signal.SIGHUP)
    system.run_until(lambda: arbiter.current.number == 2)
    return system


def verdict(system: FakeSystem, capsys) -> list[str]:
    system.run_until(lambda: all(g.number != 1 for g in system.the_arbiter.generations))
    return [line for line in lines(capsys) if "generation 1" in line]


def test_killed_after_a_reading_it_is_a_cut_of_what_it_held(tmp_path, capsys):
    system = retiring(tmp_path, [5, 5, 5])
    system.at(system.clock + 1.05, lambda: system.kill(system.master(1).pid, signal.SIGKILL))
    assert verdict(system, capsys)[-1] == (
        "flaskbox: error: reload: the old code's uWSGI master (generation 1) ended before its requests did "
        "(killed?): the 3 it held were cut")


def test_killed_during_a_reading_the_reading_does_not_count(tmp_path, capsys):
    system = retiring(tmp_path, [5, 5])
    master = system.master(1)

    def kill_on_the_third_read():
        if len(system.reads) == 3:
            system.kill(master.pid, signal.SIGKILL)

    system.during_read = kill_on_the_third_read
    said = verdict(system, capsys)
    assert said[-1].endswith("ended before its requests did (killed?): the 2 it held were cut"), said


def test_killed_before_its_pool_was_ever_read_it_is_still_a_cut(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    system.master(1).request(5)
    system.send(system.clock, signal.SIGHUP)
    # Killed the moment the new code's mark is written, in the same turn
    # that makes it serve: dying when first read.
    write = system.write

    def and_kill(path, text):
        write(path, text)
        if path == system.runtime.uwsgi_dir / "g2" / "ready":
            system.kill(system.master(1).pid, signal.SIGKILL)

    system.write = and_kill
    said = verdict(system, capsys)
    assert said[-1] == ("flaskbox: error: reload: the old code's uWSGI master (generation 1) ended before "
                        "its pool could be read (killed?): any request it held was cut"), said


@pytest.mark.parametrize("kill_after", [x / 20 for x in range(0, 60)])
def test_every_interleaving_is_a_cut_while_it_holds_and_never_a_finish(tmp_path, capsys, kill_after):
    # Requests end 1.5 and 2.5 s after the HUP, after the 1 s the new code
    # takes to load; the old master is killed kill_after seconds into its
    # retirement: before, between and after the readings (every 0.2 s) and
    # the requests' ends.
    system = retiring(tmp_path, [1.5, 2.5])
    start = system.clock
    master = system.master(1)
    ends = sorted(master.requests.values())
    system.at(start + kill_after, lambda: system.kill(master.pid, signal.SIGKILL))
    said = " ".join(verdict(system, capsys))
    held_at_kill = sum(1 for end in ends if end > start + kill_after)
    if held_at_kill:
        # A cut, with what it held when last read: never a finish.
        cut = re.search(r"ended before its requests did \(killed\?\): the (\d) it held were cut", said)
        assert cut and int(cut[1]) >= held_at_kill, said
        assert "finished" not in said, said
    elif "finished its requests" not in said:
        # Killed after its last request ended but before a reading saw it
        # idle: what it held when last read, less than a reading ago.
        assert "ended before its requests did" in said, said
        assert start + kill_after - max(ends) < READ_EVERY, said
