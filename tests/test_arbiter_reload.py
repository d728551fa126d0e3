"""SIGHUP, in process (tests/arbiter_fakes.py): the next generation beside
the serving one, the swap, the old one's retirement and its verdict; a
reload refused keeps the running code; a HUP during a reload is one more
reload after it; nginx reloads only for a configuration that changed (the
container tests: test_reload.py, test_reload_grace.py,
test_reload_false_alarms.py, test_import_deadline.py, test_supervision.py,
test_tls_files.py)."""

from __future__ import annotations

import signal

import pytest

from arbiter_fakes import FakeSystem, MasterScript, lines

CUT_CLAIMS = ("their requests are cut", "ended before", "were cut", "after RELOAD_GRACE")


def serving(tmp_path, env=None) -> FakeSystem:
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter(env)
    system.run_until(lambda: arbiter.serving)
    return system


def hup(system: FakeSystem, until, at: float | None = None) -> float:
    """SIGHUP (now, or at `at`), then turns until `until()`: the seconds it took."""
    started, delivered = system.clock if at is None else at, system.delivered
    system.send(started, signal.SIGHUP)
    system.run_until(lambda: system.delivered > delivered)
    return system.run_until(until) - started


def retired(system: FakeSystem, number: int) -> bool:
    return all(g.number != number for g in system.the_arbiter.generations)


def test_a_reload_serves_the_new_code_then_retires_the_old(tmp_path, capsys):
    system = serving(tmp_path)
    lines(capsys)
    took = hup(system, lambda: retired(system, 1))
    assert took < 1.5, took  # the import's second, then the old code's stop
    assert (system.runtime.uwsgi_dir / "current").resolve() == system.runtime.uwsgi_dir / "g2"
    assert not (system.runtime.uwsgi_dir / "g1").exists()
    assert lines(capsys) == [
        "flaskbox: SIGHUP: reloading in place (the app's code, nginx's configuration and certificate if they "
        "changed; settings need a restart)",
        "flaskbox: SIGHUP: uWSGI serves the app's new code (generation 2); the old code finishes what it "
        "holds (RELOAD_GRACE 300s)",
        "flaskbox: reload: the old code (generation 1) has finished its requests and stopped"]
    # Its streams ended at the swap: SIGURG to each worker, then SIGTERM.
    assert [name for _, name in system.master(1).workers[0].signals] == ["SIGURG"]
    # nginx's configuration did not change: not judged, not reloaded.
    assert system.nginx().reloads == 0
    assert sum(argv[:2] == ["nginx", "-t"] for argv in system.spawned) == 1  # the start's static location


def test_downloads_in_flight_finish_on_the_old_code(tmp_path, capsys):
    system = serving(tmp_path)
    system.master(1).request(8)
    took = hup(system, lambda: retired(system, 1))
    assert 8 <= took < 8.5, took
    out = lines(capsys)
    assert out[-1] == "flaskbox: reload: the old code (generation 1) has finished its requests and stopped"
    assert not [line for line in out for claim in CUT_CLAIMS if claim in line]


def test_past_the_reload_grace_what_is_left_is_cut_visibly(tmp_path, capsys):
    system = serving(tmp_path, {"RELOAD_GRACE": "2"})
    worker = system.master(1).request(60)
    took = hup(system, lambda: retired(system, 1))
    assert 3 <= took < 3.5, took  # the grace, then its master stops at once
    out = lines(capsys)
    assert ("flaskbox: error: reload: 1 request(s) of the old code still in flight after RELOAD_GRACE (2s): "
            "the old code stops now, and what it still holds is cut") in out
    assert any(f"uWSGI worker(s) {worker.pid} still in a request past their budget" in line for line in out)
    assert out[-1] == "flaskbox: reload: the old code (generation 1) has stopped"


def test_an_old_master_killed_while_it_retires_is_a_cut_with_what_it_held(tmp_path, capsys):
    system = serving(tmp_path)
    system.master(1).request(6)
    system.master(1).request(6)
    hup(system, lambda: system.the_arbiter.current.number == 2)
    system.at(system.clock + 2, lambda: system.kill(system.master(1).pid, signal.SIGKILL))
    system.run_until(lambda: retired(system, 1))
    out = lines(capsys)
    assert ("flaskbox: error: reload: the old code's uWSGI master (generation 1) ended before its requests "
            "did (killed?): the 2 it held were cut") in out
    assert not [line for line in out if "has finished its requests" in line]
    assert system.the_arbiter.exit_code is None  # the container goes on


def test_a_master_slow_to_stop_after_its_requests_is_slow_not_a_cut(tmp_path, capsys):
    system = serving(tmp_path, {"RELOAD_GRACE": "10"})
    system.master(1).request(4)
    system.master(1).script.stops_after = None  # SIGSTOPped, as test_reload_false_alarms has it
    took = hup(system, lambda: retired(system, 1))
    # What RELOAD_GRACE left after its request was its workers' exit (then
    # its master's second; the new code's import, 1 s, came first).
    assert 12 <= took < 12.5, took
    out = lines(capsys)
    pid = system.master(1).pid
    assert any(line.startswith(f"flaskbox: warning: uWSGI master {pid} is slow to stop its idle workers; "
                               "killing them past their budget (no request was in flight) (their budget: "
                               "RELOAD_GRACE 10 s, 7.0 s of it left") for line in out), out
    assert out[-1] == ("flaskbox: reload: the old code (generation 1) has finished its requests; its master, "
                       "slow to stop, was killed")
    assert not [line for line in out for claim in CUT_CLAIMS if claim in line]


def test_a_hup_during_a_reload_is_one_more_reload_after_it(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    for number in (1, 2, 3):
        system.masters[number] = MasterScript(import_seconds=3)
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    system.send(system.clock, signal.SIGHUP)
    for later in (1.0, 1.5, 2.0):  # three during the first: one more reload
        system.send(system.clock + later, signal.SIGHUP)
    system.run_until(lambda: arbiter.current.number == 3 and retired(system, 2))
    out = lines(capsys)
    assert out.count("flaskbox: SIGHUP during a reload: another reload follows this one") == 1
    assert sum("serves the app's new code (generation 2)" in line for line in out) == 1
    assert [master.number for master in system.masters_running()] == [3]
    system.run_until(lambda: system.clock > 20)
    assert arbiter.current.number == 3  # and no fourth
    # The master that serves is the one supervised: its death ends the container.
    system.kill(system.master(3).pid, signal.SIGKILL)
    assert system.run_to_exit() == 137


@pytest.mark.parametrize("status, why", [
    (22, "APP_MODULE='app' no longer imports (see above)"),
    (124, "APP_MODULE='app' did not import within IMPORT_TIMEOUT (120 s; where it waited is above)"),
])
def test_code_that_no_longer_loads_is_not_served(tmp_path, capsys, status, why):
    system = serving(tmp_path)
    marks = {"import-stacks": "Timeout\n"} if status == 124 else {}
    system.masters[2] = MasterScript(fails_with=status, marks=marks)
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    assert f"flaskbox: error: SIGHUP: {why}; still serving the code loaded before" in lines(capsys)
    assert system.the_arbiter.current.number == 1
    assert (system.runtime.uwsgi_dir / "current").resolve() == system.runtime.uwsgi_dir / "g1"
    assert not (system.runtime.uwsgi_dir / "g2").exists()
    # Fixed, the next HUP serves it, numbered past the one refused.
    hup(system, lambda: system.the_arbiter.current.number == 3)


def test_a_static_location_nginx_rejects_keeps_the_running_code(tmp_path, capsys):
    system = serving(tmp_path)
    system.masters[2] = MasterScript(app={"flask": True, "static_folder": "/app/assets",
                                          "static_url_path": "/assets"})
    system.nginx_test_statuses = [1]
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    assert ("flaskbox: error: SIGHUP: nginx rejected its configuration with the static location of the app's "
            "new code (message above: the static folder, or a drop-in in /app/nginx.d); still serving the "
            "code loaded before") in lines(capsys)
    assert "location /static/ {" in system.runtime.static_conf.read_text()
    system.run_until(lambda: system.master(2).status is not None, limit=system.clock + 1)


def test_a_hup_waiting_behind_a_refused_reload_gets_a_folder_of_its_own(tmp_path, capsys):
    # The refused code's master is killed, and reaped a turn later: its end
    # removes its folder, which must not be the next reload's.
    system = serving(tmp_path)
    system.masters[2] = MasterScript(app={"flask": True, "static_folder": "/app/assets",
                                          "static_url_path": "/assets"}, import_seconds=1.0)
    system.nginx_test_statuses = [1]
    system.send(system.clock, signal.SIGHUP)
    system.send(system.clock + 0.5, signal.SIGHUP)  # during the first: one more reload after it
    system.run_until(lambda: system.the_arbiter.current.number == 3, limit=system.clock + 30)
    assert "SIGHUP: uWSGI serves the app's new code (generation 3)" in "\n".join(lines(capsys))
    uwsgi = system.runtime.uwsgi_dir
    assert (uwsgi / "current").resolve() == uwsgi / "g3" and (uwsgi / "g3" / "app.json").exists()
    assert not (uwsgi / "g2").exists()


def test_a_static_location_that_cannot_be_written_keeps_the_running_code(tmp_path, capsys, monkeypatch):
    from flaskbox.arbiter import nginx

    system = serving(tmp_path)
    before = system.runtime.static_conf.read_text()
    system.masters[2] = MasterScript(app={"flask": True, "static_folder": "/app/assets",
                                          "static_url_path": "/assets"})

    def full(place, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nginx, "whole", full)
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    assert (f"flaskbox: error: SIGHUP: cannot write nginx's static location for the new code in "
            f"{system.runtime.dir} (No space left on device; a full disk?); still serving the code loaded "
            "before") in lines(capsys)
    assert system.the_arbiter.current.number == 1 and system.runtime.static_conf.read_text() == before
    system.run_until(lambda: system.master(2).status is not None, limit=system.clock + 1)


def test_a_moved_static_folder_is_one_hup_and_nginx_reloads(tmp_path, capsys):
    system = serving(tmp_path)
    system.masters[2] = MasterScript(app={"flask": True, "static_folder": "/app/assets",
                                          "static_url_path": "/assets"})
    hup(system, lambda: system.nginx().reloads == 1)
    assert "location /assets/ {" in system.runtime.static_conf.read_text()
    assert "flaskbox: SIGHUP: nginx reloads its configuration, which changed" in lines(capsys)


def test_a_drop_in_nginx_rejects_is_not_loaded_and_the_code_is(tmp_path, capsys, monkeypatch):
    system = serving(tmp_path)
    (system.runtime.nginx_dir / "dropin.conf").write_text("this is not nginx\n")
    system.nginx_test_statuses = [1]
    hup(system, lambda: retired(system, 1))
    system.run_until(lambda: system.clock > system.clock + 0.5 or not any(
        p.status is None for p in system.processes.values() if p.argv[:2] == ["nginx", "-t"]))
    out = lines(capsys)
    assert ("flaskbox: error: SIGHUP: nginx rejected its configuration (message above); still serving the "
            "previous one") in out
    assert system.nginx().reloads == 0 and system.the_arbiter.current.number == 2


def test_a_serving_process_dying_while_the_new_code_loads_ends_the_container(tmp_path, capsys):
    system = serving(tmp_path)
    system.masters[2] = MasterScript(import_seconds=40)
    hup(system, lambda: system.clock > 32)
    assert ("flaskbox: SIGHUP: the new code has been loading for 10 s: its import runs; the code loaded "
            "before serves meanwhile") in lines(capsys)
    killed = system.clock
    system.kill(system.nginx().pid, signal.SIGKILL)
    assert system.run_to_exit() == 137
    assert system.clock - killed < 2.5
    out = lines(capsys)
    assert "the reload is abandoned" in out[0]
    assert out[-1] == "flaskbox: error: container stopped: nginx's master was killed by signal 9"


def test_helpers_that_die_while_the_new_code_loads_come_back(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[2] = MasterScript(import_seconds=20)
    arbiter = system.arbiter({"METRICS_PORT": "9100"})
    system.run_until(lambda: arbiter.serving)
    hup(system, lambda: system.clock > 5)
    metrics = system.named("python3 -I -m flaskbox metrics")[0]
    system.kill(metrics.pid, signal.SIGKILL)
    system.run_until(lambda: system.named("python3 -I -m flaskbox metrics"))
    assert arbiter.current.number == 1  # still loading: the helper did not wait for it
    assert "flaskbox: error: the metrics server exited with code 137; starting it again" in lines(capsys)


def test_no_room_under_the_pids_limit_keeps_the_running_code(tmp_path, capsys):
    system = serving(tmp_path)
    system.record.derived["RELOAD_ROOM"] = "0"
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    assert ("flaskbox: error: SIGHUP: the pids limit leaves no room for the new code's pool beside the "
            "running one; still serving the code loaded before (restart the container, or raise the "
            "limit)") in lines(capsys)
    assert system.the_arbiter.current.number == 1


def test_a_third_pool_waits_for_the_retiring_one_to_end(tmp_path, capsys):
    system = serving(tmp_path)
    system.master(1).request(10)
    hup(system, lambda: system.the_arbiter.current.number == 2)
    system.free_pids = 0  # no room for a third pool now
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    assert ("flaskbox: SIGHUP: the code of an earlier reload still finishes its requests (RELOAD_GRACE 300s) "
            "and the pids limit has no room for a third pool: the new code is loaded once that "
            "ends") in lines(capsys)
    assert system.the_arbiter.current.number == 2
    system.free_pids = None
    system.run_until(lambda: system.the_arbiter.current.number == 3)
    assert system.clock >= 10  # once generation 1 had ended


def test_room_counts_what_the_new_pool_has_yet_to_start(tmp_path, capsys):
    # It serves from its first worker on: free pids for one more pool now
    # are not room for a third while its other workers are still to come.
    system = serving(tmp_path)
    system.master(1).request(10)
    hup(system, lambda: system.the_arbiter.current.number == 2)
    pool = int(system.the_arbiter.settings.derived["POOL_PIDS"])
    system.free_pids, system.pool_tasks = pool, 1
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    assert any("the pids limit has no room for a third pool" in line for line in lines(capsys))
    assert system.the_arbiter.current.number == 2
    system.free_pids = system.pool_tasks = None
    system.run_until(lambda: system.the_arbiter.current.number == 3)
    assert system.clock >= 10  # once generation 1 had ended


def test_a_stop_during_a_reload_ends_the_loading_code_at_once(tmp_path, capsys):
    system = serving(tmp_path)
    system.masters[2] = MasterScript(import_seconds=30)
    hup(system, lambda: system.clock > 3)
    system.send(system.clock, signal.SIGTERM)
    assert system.run_to_exit() == 0
    assert [name for _, name in system.master(2).signals] == ["SIGKILL"]
    assert lines(capsys)[-1] == "flaskbox: stopped"


def test_a_hup_applies_the_certificate(tmp_path, monkeypatch):
    from flaskbox.sidecars import certificates
    from helpers import make_pair

    make_pair(tmp_path)
    applied = []
    monkeypatch.setattr(certificates, "apply", lambda cert, key, runtime: applied.append((cert, key)) or True)
    system = FakeSystem(tmp_path)
    arbiter = system.arbiter({"TLS_CERT": str(tmp_path / "tls.crt"), "TLS_KEY": str(tmp_path / "tls.key"),
                              "TLS_PORT": "8443"})
    system.run_until(lambda: arbiter.serving)
    hup(system, lambda: arbiter.current.number == 2)
    assert applied == [(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))]


def test_a_full_disk_keeps_the_running_code_and_names_the_disk(tmp_path, capsys, monkeypatch):
    # RUNTIME_DIR out of space or inodes (test_resource_limits.py): the new
    # code's folder cannot be made, or its master cannot write its files.
    from flaskbox.arbiter.generation import Generation

    system = serving(tmp_path)

    def full(generation):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Generation, "make_folder", full)
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    out = lines(capsys)
    assert (f"flaskbox: error: SIGHUP: cannot make the new code's folder in {system.runtime.dir} (No space "
            "left on device; a full disk?); still serving the code loaded before") in out
    monkeypatch.undo()
    system.masters[3] = MasterScript(fails_with=73)  # the number is spent: never a folder twice
    hup(system, lambda: not system.the_arbiter.reload.under_way)
    out = lines(capsys)
    assert (f"flaskbox: error: SIGHUP: uWSGI could not write its files in {system.runtime.dir} (message "
            "above; a full disk?); still serving the code loaded before") in out
    assert not [line for line in out if "no longer imports" in line]
    assert system.the_arbiter.current.number == 1 and system.the_arbiter.exit_code is None


def test_the_old_codes_exit_gets_what_the_reload_grace_left(tmp_path, capsys):
    # Issue 54: the old code's exit handlers (an SDK's flush) of 5 s used
    # to be killed after a fixed 2 s.
    system = serving(tmp_path, {"RELOAD_GRACE": "30"})
    system.master(1).request(2)
    system.master(1).script.stops_after = 5
    took = hup(system, lambda: retired(system, 1))
    assert 7 <= took < 7.5, took
    out = lines(capsys)
    assert out[-1] == "flaskbox: reload: the old code (generation 1) has finished its requests and stopped"
    assert not [line for line in out if "budget" in line or "slow" in line], out
