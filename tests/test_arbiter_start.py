"""The arbiter's start, in process (tests/arbiter_fakes.py: fake processes,
a fake clock): the pool's first generation, nginx once a worker accepts and
the metrics server listens, "serving"; and every way a start ends instead,
with its exit code and its words."""

from __future__ import annotations

import signal

from arbiter_fakes import FakeSystem, MasterScript, lines


def test_a_start_serves_once_a_worker_accepts(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter({"METRICS_PORT": "9100"})
    at = system.run_until(lambda: arbiter.serving)
    said = lines(capsys)
    assert said[-1] == f"flaskbox: serving app on port 80 (nginx {system.nginx().pid}, uWSGI {system.master(1).pid})"
    assert 1.0 <= at < 1.2, at  # the import's second, and the marks' looks
    assert (system.runtime.uwsgi_dir / "current").resolve() == system.runtime.uwsgi_dir / "g1"
    # The static location the app asked for, judged before nginx started.
    assert "location /static/ {" in system.runtime.static_conf.read_text()
    assert [argv[:2] for argv in system.spawned] == [
        ["uwsgi", "--set-placeholder"], ["python3", "-I"], ["nginx", "-t"], ["nginx", "-e"]]
