"""SIGHUP reloads in place: `docker kill -s HUP` (or `kill -HUP 1`) makes
uWSGI load the app's code anew and nginx re-read its config, with no failed
request under steady load, and the container keeps running; a docker stop
afterwards is still graceful. Code that no longer imports is not loaded: the
running code keeps serving. In debug mode, HUP restarts the dev server."""

import http.client
import time
import uuid

import pytest

from helpers import docker, share_with_container
from load import Load

# A route only the code written by the test can answer, with its token.
VERSION_ROUTE = '''

@app.get("/version")
def version():
    return "{token}\\n"
'''


def write_version(app_dir, token: str) -> None:
    """The sample app plus /version answering `token`."""
    source = app_dir / "app.py"
    base = source.read_text().split("\n\n@app.get(\"/version\")")[0]
    source.write_text(base + VERSION_ROUTE.format(token=token))
    share_with_container(source)


def body(container, path: str = "/version") -> str:
    resp = container.request(path)
    return resp.text if resp.status == 200 else f"<{resp.status}>"


def hup(container) -> None:
    docker("kill", "-s", "HUP", container.name)


def test_hup_reloads_the_code_under_load_with_no_failed_request(containers, app_copy, figure):
    first, second, third = (uuid.uuid4().hex for _ in range(3))
    write_version(app_copy, first)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/version")
    assert body(c) == f"{first}\n"
    # New connections for every request, as a client loop (curl) makes
    # them: a keep-alive connection nginx closes as its old worker retires
    # is a race every HTTP server has, which clients retry on their own.
    with Load(c.port, path="/version", connections=16, seconds=60, keep_alive=False) as load:
        c.wait_until(lambda: len(load.outcomes) > 300, "300 requests under load", timeout=20)
        write_version(app_copy, second)
        # Production never reloads on a save: only the signal does.
        assert body(c) == f"{first}\n"
        hup(c)
        c.wait_until(lambda: body(c) == f"{second}\n", "the new code served after SIGHUP", timeout=30)
        reloaded = len(load.outcomes)
        c.wait_until(lambda: len(load.outcomes) > reloaded + 300, "300 requests after the reload")
        write_version(app_copy, third)
        hup(c)
        c.wait_until(lambda: body(c) == f"{third}\n", "the newer code served after a second SIGHUP",
                     timeout=30)
        reloaded = len(load.outcomes)
        c.wait_until(lambda: len(load.outcomes) > reloaded + 300, "300 requests after the second reload")
        load.stop()
    outcomes = load.outcomes
    figure("requests during two reloads under load", f"{len(outcomes)} ({Load.summary(outcomes)})")
    figure("slowest request across a reload, ms", f"{max(o.latency for o in outcomes) * 1000:.0f}")
    assert Load.failures(outcomes) == [], f"{Load.summary(outcomes)}\n{c.logs()}"
    assert c.running(), c.logs()
    assert "SIGHUP: uWSGI serves the app's new code (generation 3)" in c.logs()


def test_a_stop_after_reloads_still_loses_nothing(containers, app_copy):
    token = uuid.uuid4().hex
    write_version(app_copy, token)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/version")
    for done in (1, 2):
        hup(c)
        # Each reload's own line: the old code of each must have stopped too
        # before the load starts.
        c.wait_until(lambda done=done: f"the old code (generation {done}) has finished" in c.logs(),
                     "the old code stopped")
        c.wait_http("/version")
    with Load(c.port, path="/version", connections=32, seconds=30) as load:
        c.wait_until(lambda: len(load.outcomes) > 1000, "1000 requests under load", timeout=15)
        stopped_at = time.monotonic()
        docker("stop", c.name, timeout=40)
        load.stop()
    before = load.before(stopped_at)
    assert before and Load.failures(before) == [], f"{Load.summary(before)}\n{c.logs()}"
    assert c.exit_code() == 0, c.logs()


def test_code_that_no_longer_imports_is_not_loaded(containers, app_copy):
    good, fixed = uuid.uuid4().hex, uuid.uuid4().hex
    write_version(app_copy, good)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/version")
    source = app_copy / "app.py"
    source.write_text(source.read_text() + "\nimport a_module_nobody_installed\n")
    hup(c)
    c.wait_until(lambda: "no longer imports" in c.logs(), "the refused reload in the log")
    assert "ModuleNotFoundError: No module named 'a_module_nobody_installed'" in c.logs()
    # Still the code loaded before, still serving.
    assert body(c) == f"{good}\n"
    assert c.running()
    write_version(app_copy, fixed)
    hup(c)
    c.wait_until(lambda: body(c) == f"{fixed}\n", "the fixed code served after SIGHUP", timeout=30)


def test_hup_rereads_the_drop_in_config(containers, app_copy):
    token = uuid.uuid4().hex
    (app_copy / "nginx.d").mkdir()
    share_with_container(app_copy / "nginx.d")
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/")
    assert c.request("/dropin").status == 404
    rule = app_copy / "nginx.d" / "dropin.conf"
    rule.write_text(f'location = /dropin {{ return 200 "{token}\\n"; }}\n')
    share_with_container(rule)
    hup(c)
    c.wait_until(lambda: body(c, "/dropin") == f"{token}\n", "the new drop-in served after SIGHUP")
    # A drop-in nginx rejects is not loaded: the running config stays. The
    # app's new code, saved with it, is served all the same.
    rule.write_text("this is not nginx\n")
    code = uuid.uuid4().hex
    write_version(app_copy, code)
    hup(c)
    c.wait_until(lambda: "nginx rejected its configuration" in c.logs(), "the refused nginx reload")
    c.wait_until(lambda: body(c) == f"{code}\n", "the new code served", timeout=30)
    assert body(c, "/dropin") == f"{token}\n"
    assert c.running(), c.logs()


def test_a_reload_leaves_nginx_and_its_connections_alone(containers, app_copy):
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    write_version(app_copy, first)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/version")
    workers = c.pids("nginx: worker process")
    # A browser's keep-alive connection, open across the reload.
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    conn.request("GET", "/version")
    assert conn.getresponse().read() == f"{first}\n".encode()
    write_version(app_copy, second)
    hup(c)
    c.wait_until(lambda: body(c) == f"{second}\n", "the new code served after SIGHUP")
    conn.request("GET", "/version")
    assert conn.getresponse().read() == f"{second}\n".encode()
    conn.close()
    # nginx's configuration did not change, so neither did nginx.
    assert c.pids("nginx: worker process") == workers
    assert "nginx reloads its configuration" not in c.logs()


def test_one_hup_serves_a_static_folder_the_app_moved(containers, app_copy):
    token = uuid.uuid4().hex
    (app_copy / "assets").mkdir()
    (app_copy / "assets" / "moved.txt").write_text(f"{token}\n")
    share_with_container(app_copy)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/")
    assert c.request("/assets/moved.txt").status == 404
    source = app_copy / "app.py"
    source.write_text(source.read_text().replace("app = Flask(__name__)",
                                                 'app = Flask(__name__, static_folder="assets", '
                                                 'static_url_path="/assets")'))
    assert 'static_folder="assets"' in source.read_text()
    hup(c)
    c.wait_until(lambda: "SIGHUP: nginx reloads its configuration, which changed" in c.logs(),
                 "nginx reloading the new static location")
    # Served by nginx, from disk: its `expires epoch` (Flask sends no Expires).
    epoch = "Thu, 01 Jan 1970 00:00:01 GMT"
    c.wait_until(lambda: c.request("/assets/moved.txt").headers.get("expires") == epoch,
                 "the moved folder served by nginx")
    assert c.request("/assets/moved.txt").text == f"{token}\n"


def restarts(container) -> int:
    """The dev server's restarts so far: Werkzeug's reloader says so each
    time it starts a serving process, once the previous one has exited."""
    return container.logs().count("Restarting with")


def test_hup_in_debug_mode_restarts_the_dev_server(containers, app_copy):
    token = uuid.uuid4().hex
    write_version(app_copy, token)
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/version")
    started = restarts(c)
    hup(c)
    c.wait_until(lambda: c.logs().count("SIGHUP: reloading") == 1, "the first restart of the dev server")
    # At once, while the old serving process exits or the new one starts:
    # never the end of the container (the restart under way serves for it).
    hup(c)
    c.wait_until(lambda: restarts(c) > started, "a new serving process")
    c.wait_http("/version")
    # Once it serves, a HUP restarts it again.
    seen, started = c.logs().count("SIGHUP: reloading"), restarts(c)
    hup(c)
    c.wait_until(lambda: restarts(c) > started, "a restart for a later HUP")
    assert c.logs().count("SIGHUP: reloading") > seen
    c.wait_http("/version")
    assert body(c) == f"{token}\n"
    assert c.running(), c.logs()


def test_hup_while_the_app_is_still_importing_changes_nothing(containers, fixture_image):
    c = containers.run(image=fixture_image["image"], env={"APP_MODULE": "slow:app", "IMPORT_SECONDS": "4"})
    c.wait_until(lambda: "Python main interpreter initialized" in c.logs(), "uWSGI to start importing")
    hup(c)
    c.wait_until(lambda: "SIGHUP while starting: nothing to reload yet, ignored" in c.logs(),
                 "the HUP logged")
    c.wait_http("/", timeout=30)
    assert c.running()


def test_a_hup_during_a_reload_is_one_more_reload_and_the_pool_stays_supervised(containers, fixture_image):
    # Each generation takes 3 s to import, so the second HUP lands while the
    # first reload waits for the new code. bash runs a trap again inside the
    # one running: two reloads at once once started two generations in one
    # folder, and the supervisor lost sight of the one that served.
    c = containers.run(image=fixture_image["image"], env={"APP_MODULE": "slow:app", "IMPORT_SECONDS": "3"})
    c.wait_http("/", timeout=30)
    hup(c)
    c.wait_until(lambda: "SIGHUP: reloading in place" in c.logs(), "the first reload under way")
    hup(c)
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 3)" in c.logs(),
                 "the second reload done", timeout=40)
    c.wait_until(lambda: "the old code (generation 2) has finished its requests" in c.logs(),
                 "generation 2 retired", timeout=40)
    logs = c.logs()
    assert "SIGHUP during a reload: another reload follows this one" in logs
    assert logs.count("uWSGI serves the app's new code (generation 2)") == 1, logs
    assert c.request("/").status == 200
    masters = c.pids("flaskbox uWSGI master")
    assert len(masters) == 1, (masters, c.processes(), logs)
    # The master that serves is the one supervised: its death ends the container.
    c.signal("KILL", masters[0])
    assert c.wait_exit(timeout=20) != 0, c.logs()


@pytest.mark.slow
def test_a_slow_reload_says_where_the_new_codes_import_waits_while_it_waits(containers, app_copy):
    # The new code's import waits (for a lock, a database, as MLflow's did
    # beside its own loggers): the log says so while it waits, with where,
    # and the code loaded before serves meanwhile.
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/")
    c.exec("touch", "/tmp/hold-the-import")
    source = app_copy / "app.py"
    source.write_text("import os\nimport time\n\nwhile os.path.exists('/tmp/hold-the-import'):\n"
                      "    time.sleep(0.1)\n" + source.read_text())
    share_with_container(source)
    hup(c)
    c.wait_until(lambda: "SIGHUP: the new code has been loading for 10 s: its import waits at /app/app.py, "
                         "line 5, in <module>; the code loaded before serves meanwhile" in c.logs(),
                 "the note of where the import waits", timeout=30)
    assert c.request("/").status == 200
    c.exec("rm", "/tmp/hold-the-import")
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the new code",
                 timeout=30)


def test_a_serving_process_dying_while_the_new_code_loads_ends_the_container_at_once(containers, app_copy):
    # The new code takes 40 s to import; the supervisor waits on it inside
    # the reload, and must still see nginx's master die meanwhile. (The
    # reload's note at 30 s is test_arbiter_reload's: here the import marks
    # its start, and the kill comes then.)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app:ro"))
    c.wait_http("/")
    source = app_copy / "app.py"
    source.write_text("import pathlib\nimport time\n\npathlib.Path('/tmp/new-code-importing').touch()\n"
                      "time.sleep(40)\n" + source.read_text())
    share_with_container(source)
    hup(c)
    c.wait_until(lambda: c.exec("test", "-e", "/tmp/new-code-importing").returncode == 0,
                 "the new code importing", timeout=15)
    assert c.request("/").status == 200  # the code loaded before serves meanwhile
    killed = time.monotonic()
    c.signal("KILL", *c.pids("nginx: master process"))
    code = c.wait_exit(timeout=9)
    assert time.monotonic() - killed < 5, c.logs()
    assert code != 0, c.logs()
    assert "the reload is abandoned" in c.logs()
