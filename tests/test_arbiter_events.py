"""The arbiter waits on events, not timers: the marks of readiness wake its
loop (inotify: lib/flaskbox/arbiter/events.py), no deadline is left once it
serves, and the certificate's check at a HUP runs in a child, so that PID 1
never loads OpenSSL. In process (tests/arbiter_fakes.py), and the real
inotify and System.wait against the kernel. The container test:
test_tls.py's PID 1 maps after a HUP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import arbiter_fakes
from arbiter_fakes import FakeSystem, MasterScript, lines
from flaskbox.arbiter.events import DEGRADED_WAIT, Inotify
from helpers import REPO, make_pair


def live_deadlines(arbiter) -> list:
    return [entry for entry in arbiter.loop._deadlines if not entry[2].cancelled]


def test_a_start_waits_on_marks_not_looks(tmp_path):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(import_seconds=20.0)
    arbiter = system.arbiter({"METRICS_PORT": "9100"})
    at = system.run_until(lambda: arbiter.serving)
    # The import's 20 s, then nginx -t's and nginx's own 0.05 s each:
    # nothing waits for a look. Looks every 20 ms took a thousand turns; the
    # fake's clock adds one a second (arbiter_fakes: a test's own look).
    assert at == pytest.approx(20.1), at
    assert system.turns < 30, system.turns
    # Serving and idle: no deadline, no mark, no folder watched.
    assert live_deadlines(arbiter) == []
    assert not [mark for mark in arbiter.loop._marks if not mark.cancelled]
    assert system.watched == set()


def test_a_metrics_mark_written_before_its_watch_or_long_after_is_seen(tmp_path):
    for after, serving_at in ((0.0, 1.1), (7.0, 7.05)):
        system = FakeSystem(tmp_path / str(after))
        system.metrics_after = after
        arbiter = system.arbiter({"METRICS_PORT": "9100"})
        assert system.run_until(lambda arbiter=arbiter: arbiter.serving) == pytest.approx(serving_at)
        spawned = [" ".join(argv) for argv in system.spawned]
        assert spawned.index("python3 -I -m flaskbox metrics") < [
            index for index, argv in enumerate(spawned) if argv.startswith("nginx -e")][0]


def test_nginx_listens_once_its_pid_file_holds_its_pid_not_when_it_is_made(tmp_path, monkeypatch):
    def started(nginx):
        # What nginx does: the file made empty, its pid written later.
        nginx.workers, nginx.children = [], []
        pid_file = nginx.system.runtime.nginx_pid
        nginx.system.after(0.05, lambda: nginx.system.write(pid_file, ""))
        nginx.system.after(3.0, lambda: nginx.system.write(pid_file, f"{nginx.pid}\n"))

    monkeypatch.setattr(arbiter_fakes.Nginx, "started", started)
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    assert system.run_until(lambda: arbiter.serving) == pytest.approx(1.05 + 3.0)


def test_without_inotify_the_marks_are_looked_for_at_each_short_wait(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.watching, system.unwatched = False, "Too many open files"
    arbiter = system.arbiter()
    assert system.run_until(lambda: arbiter.serving) == pytest.approx(1.1, abs=DEGRADED_WAIT)
    assert lines(capsys)[0] == (
        "flaskbox: warning: no inotify instance for the arbiter (Too many open files: fs.inotify."
        "max_user_instances, counted per user on the whole host): it looks for the marks it waits for every "
        "50 ms instead")


def test_a_hups_certificate_is_checked_in_a_child_and_the_reload_waits_for_it(tmp_path, monkeypatch):
    from flaskbox.sidecars import certificates

    make_pair(tmp_path)
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter({"TLS_CERT": str(tmp_path / "tls.crt"), "TLS_KEY": str(tmp_path / "tls.key"),
                              "TLS_PORT": "8443"})
    system.run_until(lambda: arbiter.serving)
    # PID 1 itself never applies it: only its child does (the fake's).
    monkeypatch.setattr(certificates, "apply", lambda *args: pytest.fail("applied in PID 1"))
    checked = []
    system.apply_certificate = lambda: checked.append(system.clock) or True
    system.apply_seconds = 4.0
    hup_at = system.clock
    system.send(hup_at, signal.SIGHUP)
    system.run_until(lambda: arbiter.current.number == 2)
    assert checked == [hup_at]
    child = next(process for process in system.processes.values() if process.argv[-1] == "tls-apply")
    assert child.argv == ["python3", "-I", "-m", "flaskbox", "tls-apply"]
    master = system.master(2)
    assert master.pid > child.pid  # the new code started once the check had ended
    assert system.clock >= hup_at + 4.0


def test_a_stop_during_the_certificates_check_loads_no_new_code(tmp_path):
    make_pair(tmp_path)
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter({"TLS_CERT": str(tmp_path / "tls.crt"), "TLS_KEY": str(tmp_path / "tls.key"),
                              "TLS_PORT": "8443"})
    system.run_until(lambda: arbiter.serving)
    system.apply_certificate = lambda: True
    system.apply_seconds = 2.0
    system.send(system.clock, signal.SIGHUP)
    system.send(system.clock + 1, signal.SIGTERM)
    assert system.run_to_exit() == 0
    assert [process.number for process in system.processes.values() if hasattr(process, "number")] == [1]


def test_a_hup_during_a_reload_is_pending_by_name(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    system.masters[2] = MasterScript(import_seconds=5.0)
    system.send(system.clock, signal.SIGHUP)
    system.send(system.clock + 1, signal.SIGHUP)
    system.send(system.clock + 2, signal.SIGHUP)
    system.run_until(lambda: arbiter.hup_pending)
    system.run_until(lambda: arbiter.current.number == 3)
    assert not arbiter.hup_pending
    assert lines(capsys).count("flaskbox: SIGHUP during a reload: another reload follows this one") == 1


# --- the real inotify and wait ----------------------------------------------------------------------

def test_inotify_names_the_files_written_in_a_watched_folder(tmp_path):
    inotify = Inotify()
    try:
        watched, other = tmp_path / "watched", tmp_path / "other"
        watched.mkdir()
        other.mkdir()
        inotify.watch(watched)
        (other / "ready").touch()
        assert inotify.read() == []
        (watched / "ready").touch()
        (watched / "nginx.pid.part").write_text("7\n")
        os.replace(watched / "nginx.pid.part", watched / "nginx.pid")
        assert set(inotify.read()) == {watched / "ready", watched / "nginx.pid.part", watched / "nginx.pid"}
        inotify.unwatch(watched)
        (watched / "later").touch()
        assert inotify.read() == []
        inotify.watch(watched)
        os.unlink(watched / "ready")
        for path in watched.iterdir():
            path.unlink()
        watched.rmdir()  # the kernel drops the watch: said once, then nothing
        assert inotify.read() == []
        with pytest.raises(OSError):
            inotify.watch(tmp_path / "missing")
    finally:
        os.close(inotify.fd)


def test_the_systems_wait_wakes_on_a_mark_not_at_its_timeout(tmp_path):
    # In a process of its own: System sets PID 1's signal handlers. The wait
    # has no timeout at all: only the mark can end it (the mark is written
    # a moment later, most often while the wait blocks; written before it,
    # it ends the wait as surely). No clock is read: a loaded machine may
    # take any time to get there.
    script = f"""
import sys, threading
from pathlib import Path
sys.path.insert(0, {str(REPO / "lib")!r})
from flaskbox.arbiter.system import System
system = System()
folder = Path({str(tmp_path)!r})
system.watch(folder)
threading.Timer(0.1, lambda: (folder / "ready").touch()).start()
assert system.wait(None) == []
print(*sorted(set(map(str, system.written()))))
"""
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{tmp_path}/ready"], result.stdout


def test_the_arbiter_imports_no_openssl():
    # What PID 1 loads (flaskbox/arbiter/__main__.py's imports): no ssl, no
    # hashlib, whose digests are OpenSSL's.
    script = f"""
import sys
sys.path.insert(0, {str(REPO / "lib")!r})
import flaskbox.arbiter.__main__
print(sorted(name for name in ("ssl", "_ssl", "hashlib", "_hashlib") if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_past_the_kernels_limit_on_watches_the_loop_looks_instead(tmp_path):
    # In a process of its own: System sets PID 1's signal handlers.
    script = f"""
import errno, sys
sys.path.insert(0, {str(REPO / "lib")!r})
from flaskbox.arbiter import events
from flaskbox.arbiter.system import System
system = System()
def full(self, folder):
    raise OSError(errno.ENOSPC, "No space left on device")
events.Inotify.watch = full
system.watch({str(tmp_path)!r})
print(system.watching, system.written())
"""
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, "False None"), result.stderr
    assert result.stderr == (
        f"flaskbox: warning: the arbiter cannot watch {tmp_path} (No space left on device: fs.inotify."
        "max_user_watches, counted per user on the whole host): it looks for the marks it waits for every "
        "50 ms instead\n")
