"""An app whose import leaves threads running, in process
(tests/arbiter_fakes.py): its master says so and exits with
LOADS_IN_EACH_WORKER, the arbiter starts the same generation again with
--lazy-apps, and every later one so; a stop or a reload meanwhile (the
container tests: test_app_threads.py)."""

from __future__ import annotations

import signal

import pytest

from arbiter_fakes import FakeSystem, MasterScript, lines
from arbiter_fakes import Master as FakeMaster
from flaskbox.layout import LOADS_IN_EACH_WORKER

LEFT = '"network-loop" (Python)\n'


@pytest.fixture
def threads_left(monkeypatch):
    """threads_left(*numbers): the masters of those generations that preload the
    app find threads its import left (the in-each-worker mark, then
    LOADS_IN_EACH_WORKER once they have imported); with --lazy-apps they
    serve."""
    numbers: set[int] = set()
    started = FakeMaster.started

    def start(master):
        placeholder = next(arg for arg in master.argv if arg.startswith("flaskbox_generation="))
        number = int(placeholder.rsplit("/g", 1)[1])
        scripts = master.system.masters
        script = scripts.get(number, MasterScript())
        if number in numbers and "--lazy-apps" not in master.argv:
            scripts[number] = MasterScript(script.import_seconds, fails_with=LOADS_IN_EACH_WORKER)
            started(master)
            (master.dir / "in-each-worker").write_text(LEFT)
            scripts[number] = script
        else:
            started(master)

    monkeypatch.setattr(FakeMaster, "started", start)
    return lambda *these: numbers.update(these)


def uwsgi_starts(system: FakeSystem) -> list[tuple[str, bool]]:
    """Each uWSGI started: its generation's folder, and whether lazily."""
    return [(next(arg for arg in argv if arg.startswith("flaskbox_generation=")).rsplit("/", 1)[1],
             "--lazy-apps" in argv) for argv in system.spawned if argv[0] == "uwsgi"]


def test_the_first_generation_starts_again_lazily_and_so_does_a_reload(tmp_path, capsys, threads_left):
    system = FakeSystem(tmp_path)
    threads_left(1)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    assert uwsgi_starts(system) == [("g1", False), ("g1", True)]
    out = lines(capsys)
    assert not [line for line in out if "error" in line or "exited with code" in line], out
    system.send(system.clock, signal.SIGHUP)
    system.run_until(lambda: all(g.number != 1 for g in arbiter.generations))
    assert uwsgi_starts(system)[2:] == [("g2", True)]


def test_a_stop_during_the_first_import_ends_it_without_a_second(tmp_path, capsys, threads_left):
    system = FakeSystem(tmp_path)
    threads_left(1)
    system.masters[1] = MasterScript(import_seconds=3)
    system.arbiter()
    system.send(1.0, signal.SIGTERM)
    assert system.run_to_exit() == 143
    assert uwsgi_starts(system) == [("g1", False)]
    assert lines(capsys) == ["flaskbox: stopping before the app was ready"]


def test_a_stop_while_the_lazy_master_imports_ends_it(tmp_path, capsys, threads_left):
    system = FakeSystem(tmp_path)
    threads_left(1)
    system.masters[1] = MasterScript(import_seconds=2)
    system.arbiter()
    system.send(3.0, signal.SIGTERM)
    assert system.run_to_exit() == 143
    assert uwsgi_starts(system) == [("g1", False), ("g1", True)]
    assert lines(capsys) == ["flaskbox: stopping before the app was ready"]
    assert [name for _, name in system.masters_running()[-1].signals] == ["SIGKILL"]


def test_a_stop_as_the_master_exits_starts_nothing_more(tmp_path, capsys, threads_left):
    # The stop and the master's exit in one turn of the loop.
    system = FakeSystem(tmp_path)
    threads_left(1)
    system.masters[1] = MasterScript(import_seconds=2)
    system.arbiter()
    system.send(2.0, signal.SIGTERM)
    code = system.run_to_exit()
    assert code == 143, code
    out = lines(capsys)
    assert not [line for line in out if "exited with code" in line], out


def test_a_reloads_code_that_starts_threads_is_loaded_in_each_worker(tmp_path, capsys, threads_left):
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    threads_left(2)  # the new code's import leaves a thread
    lines(capsys)
    system.send(system.clock, signal.SIGHUP)
    system.run_until(lambda: all(g.number != 1 for g in arbiter.generations))
    assert uwsgi_starts(system)[1:] == [("g2", False), ("g2", True)]
    out = lines(capsys)
    assert not [line for line in out if "error" in line], out
    assert "uWSGI serves the app's new code (generation 2)" in "\n".join(out)


def test_an_apps_own_exit_75_is_a_failed_start(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(fails_with=LOADS_IN_EACH_WORKER)
    system.arbiter()
    assert system.run_to_exit() == LOADS_IN_EACH_WORKER
    assert uwsgi_starts(system) == [("g1", False)]
    assert lines(capsys) == [
        "flaskbox: error: uWSGI exited with code 75 before it was ready; see its log above"]
