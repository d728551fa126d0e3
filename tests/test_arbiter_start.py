"""The arbiter's start, in process (tests/arbiter_fakes.py: fake processes,
a fake clock): the pool's first generation, nginx once a worker accepts and
the metrics server listens, "serving"; and every way a start ends instead,
with its exit code and its words (the container tests: test_broken_app.py,
test_import_deadline.py, test_shutdown.py, test_reload.py, test_metrics.py,
test_port_sharing.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from arbiter_fakes import FakeSystem, MasterScript, lines
from helpers import REPO, make_pair


def test_a_start_serves_once_a_worker_accepts(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    make_pair(tmp_path)
    arbiter = system.arbiter({"METRICS_PORT": "9100", "TLS_CERT": str(tmp_path / "tls.crt"),
                              "TLS_KEY": str(tmp_path / "tls.key"), "TLS_PORT": "8443"})
    at = system.run_until(lambda: arbiter.serving)
    said = lines(capsys)
    nginx, master = system.nginx().pid, system.master(1).pid
    assert said[-1] == f"flaskbox: serving app on port 80 (nginx {nginx}, uWSGI {master})"
    assert 1.0 <= at < 1.2, at  # the import's second, and the marks' looks
    assert (system.runtime.uwsgi_dir / "current").resolve() == system.runtime.uwsgi_dir / "g1"
    # The static location the app asked for, judged before nginx started.
    assert "location /static/ {" in system.runtime.static_conf.read_text()
    # The pool and the metrics server at once; the certificate watcher once
    # nginx listens.
    run = system.runtime
    assert [" ".join(argv) for argv in system.spawned] == [
        f"uwsgi --set-placeholder flaskbox_generation={run.uwsgi_dir}/g1 --ini {run.uwsgi_ini}",
        "python3 -I -m flaskbox metrics", f"nginx -t -q -e stderr -c {run.nginx_conf}",
        f"nginx -e stderr -c {run.nginx_conf}", "python3 -I -m flaskbox tls-watch"]


def test_the_servers_get_the_environment_without_uwsgis_variables(tmp_path):
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    # uWSGI would read UWSGI_* as options of its own: the record has them.
    assert arbiter.server_env == {"PATH": "/usr/bin"}


@pytest.mark.parametrize("status, said", [
    (22, "could not load APP_MODULE='app': see the traceback above; not serving"),
    (2, "APP_MODULE='app' does not name an app (see above); not serving"),
    (73, "uWSGI could not write its files in {run} (message above; a full disk?)"),
    (1, "uWSGI exited with code 1 before it was ready; see its log above"),
])
def test_an_app_that_does_not_load_ends_the_start_with_its_code(tmp_path, capsys, status, said):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(import_seconds=0.5, fails_with=status)
    system.arbiter()
    assert system.run_to_exit() == status
    out = lines(capsys)
    assert out[-1] == "flaskbox: error: " + said.format(run=tmp_path / "run"), out
    assert not any("serving app" in line for line in out)
    assert not [argv for argv in system.spawned if argv[0] == "nginx"]


@pytest.mark.parametrize("meant, said", [
    (2, "APP_MODULE='app' does not name an app (see above); not serving"),
    (22, "could not load APP_MODULE='app': see the traceback above; not serving"),
])
def test_a_lazy_apps_worker_that_did_not_load_ends_the_start_with_the_code_it_meant(tmp_path, capsys,
                                                                                    meant, said):
    # Its master ends with need-app's 22 whatever the worker meant, which is in the mark (wsgi.failed).
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(import_seconds=0.5, fails_with=22, marks={"failed": f"{meant}\n"})
    system.arbiter()
    assert system.run_to_exit() == meant
    assert lines(capsys)[-1] == "flaskbox: error: " + said


def test_an_import_past_its_timeout_says_where_it_waited_and_ends_with_124(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    stacks = ('Timeout (0:00:03)!\nThread 0x1 (most recent call first):\n'
              '  File "/app/app.py", line 7 in connect\n')
    system.masters[1] = MasterScript(import_seconds=3, fails_with=1, marks={"import-stacks": stacks})
    system.arbiter({"IMPORT_TIMEOUT": "3"})
    assert system.run_to_exit() == 124
    out = capsys.readouterr().err
    assert ("did not import within IMPORT_TIMEOUT (3 s): it waits at /app/app.py, line 7, in connect; find "
            "what it waits for") in out
    assert '  File "/app/app.py", line 7 in connect' in out
    assert out.splitlines()[-1] == ("flaskbox: error: APP_MODULE='app' did not import within IMPORT_TIMEOUT "
                                    "(3 s; where it waited is above); not serving")


def test_a_master_its_own_deadline_did_not_end_is_killed_10_s_past_it(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(import_seconds=None)  # never ready, never ends by itself
    system.arbiter({"IMPORT_TIMEOUT": "3"})
    assert system.run_to_exit() == 124
    assert system.clock == pytest.approx(13, abs=0.1)
    assert [name for _, name in system.master(1).signals] == ["SIGKILL"]
    out = lines(capsys)
    assert ("flaskbox: error: APP_MODULE='app' did not import within IMPORT_TIMEOUT (3 s), nor stop; its "
            "uWSGI master is killed") in out


def test_a_metrics_server_that_cannot_listen_ends_the_start(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.metrics_fails = True
    system.arbiter({"METRICS_PORT": "9100"})
    assert system.run_to_exit() == 1
    assert ("flaskbox: error: the metrics server on METRICS_PORT=9100 did not start (see above); not serving"
            in lines(capsys))
    assert system.master(1).signals[-1][1] == "SIGKILL"


def test_nginx_that_cannot_take_its_port_ends_the_start_with_its_code(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.nginx_fails_with = 1
    system.arbiter()
    assert system.run_to_exit() == 1
    out = lines(capsys)
    assert ("flaskbox: error: nginx could not start (exit code 1; its message is above: a port taken by "
            "another process?); not serving") in out
    assert not any("serving app" in line for line in out)
    assert system.master(1).status is not None  # stopped, not left behind


def test_a_static_location_nginx_rejects_ends_the_start_with_2(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.nginx_test_statuses = [1]
    system.arbiter()
    assert system.run_to_exit() == 2
    assert ("flaskbox: error: nginx rejected the static location for the app's static folder (message above)"
            in lines(capsys))
    # The previous one is put back.
    assert system.runtime.static_conf.read_text() == "# before the app\n"


def test_a_static_location_that_cannot_be_written_ends_the_start_with_1(tmp_path, capsys, monkeypatch):
    # RUNTIME_DIR full: the disk named, not nginx; the file not left half written.
    from flaskbox.arbiter import nginx

    def full(place, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nginx, "whole", full)
    system = FakeSystem(tmp_path)
    system.arbiter()
    assert system.run_to_exit() == 1
    out = lines(capsys)
    assert (f"flaskbox: error: cannot write nginx's static location in {system.runtime.dir} (No space left "
            "on device; a full disk?)") in out
    assert not any("rejected" in line for line in out)
    assert system.runtime.static_conf.read_text() == "# before the app\n"


@pytest.mark.parametrize("number, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGQUIT, 131)])
def test_a_stop_while_the_app_imports_ends_at_once_with_128_plus_its_signal(tmp_path, capsys, number, code):
    # As the entry-point's traps end the start before the exec.
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(import_seconds=8)
    system.arbiter()
    system.send(2.0, number)
    assert system.run_to_exit() == code
    assert system.clock == pytest.approx(2.0, abs=0.05)
    assert lines(capsys) == ["flaskbox: stopping before the app was ready"]
    # uWSGI acts on SIGTERM only once its master loop runs: killed.
    assert [name for _, name in system.master(1).signals] == ["SIGKILL"]


def test_a_hup_while_the_app_imports_changes_nothing(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(import_seconds=4)
    arbiter = system.arbiter()
    system.send(1.0, signal.SIGHUP)
    system.run_until(lambda: arbiter.serving)
    out = lines(capsys)
    assert "flaskbox: SIGHUP while starting: nothing to reload yet, ignored" in out
    assert out[-1].startswith("flaskbox: serving app")
    assert [process.number for process in system.processes.values() if hasattr(process, "number")] == [1]


def test_every_orphan_handed_to_pid_1_is_reaped(tmp_path):
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    orphan = system.process(["sleep", "0.5"])
    orphan.exit(0, lag=0.5)
    system.run_until(lambda: system.clock > 2)
    assert orphan.status == 0 and orphan not in system.ended  # reaped, and nothing else came of it
    assert arbiter.exit_code is None


# The real System, in a process of its own (its handlers are process-wide):
# the entry-point execs Python with the stop signals blocked (env
# --block-signal), and one sent meanwhile stays pending.
PENDING_STOP = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP})
os.kill(os.getpid(), signal.SIGTERM)
assert signal.sigpending() == {signal.SIGTERM}
from flaskbox.arbiter.system import System
system = System()
print(sorted(signal.Signals(number).name for number in system.wait(10)))
print(sorted(signal.Signals(number).name for number in signal.pthread_sigmask(signal.SIG_BLOCK, set())))
# A child starts with none blocked, whatever the arbiter blocks.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
read, write = os.pipe()
pid = system.spawn(["grep", "SigBlk", "/proc/self/status"], stdout=write)
os.close(write)
os.waitpid(pid, 0)
print(os.read(read, 100).decode().split()[1])
"""


def test_a_stop_that_came_before_the_handlers_is_queued_once_they_are_set():
    script = f"import sys; sys.path.insert(0, {str(REPO / 'lib')!r})\n{PENDING_STOP}"
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["['SIGTERM']", "[]", "0000000000000000"]
