"""Real app layouts run unchanged: each fixture in tests/apps is built FROM
the app-less image (`docker build --target runtime`) exactly as
docs/your-app.md says, and served in both modes. A package with a factory
and SQLite in its instance folder, a package named `app` with
Flask-SQLAlchemy and Flask-Migrate, tiangolo/uwsgi-nginx-flask's layout, a
WSGI app without Flask, and an app pinning Flask 2.2."""

import json
import re
import shlex
import uuid

import pytest

from helpers import REPO, build_image, docker, free_port


def serving(containers, image, *args, ready="/", **kwargs):
    c = containers.run(*args, image=image, **kwargs)
    c.wait_http(ready)
    return c


# --- the app-less image --------------------------------------------------------

def test_runtime_image_has_no_app_and_says_so(containers, runtime_image):
    listing = docker("run", "--rm", "--network", "host", "--entrypoint", "ls", runtime_image,
                     "-A", "/app").stdout
    assert listing.split() == ["instance"]
    result = containers.run_once(image=runtime_image)
    assert result.returncode == 2, result.stderr
    assert "no app to serve: APP_MODULE is not set and /app has no wsgi.py, app.py or main.py" \
        in result.stderr


def test_the_sample_next_to_your_code_is_refused(containers, image, tmp_path):
    # The mistake the app-less image exists for: FROM the sample image, a
    # package copied in, APP_MODULE unset. The sample must not be served.
    (tmp_path / "flaskr").mkdir()
    (tmp_path / "flaskr" / "__init__.py").write_text("")
    (tmp_path / "Dockerfile").write_text(f"FROM {image}\nCOPY flaskr/ /app/flaskr/\n")
    tag = f"flaskbox-sample-plus:{uuid.uuid4().hex[:12]}"
    build_image(tmp_path, tag)
    try:
        result = containers.run_once(image=tag)
    finally:
        docker("rmi", "-f", tag, check=False)
    assert result.returncode == 2
    assert "is flaskbox's sample app" in result.stderr and "(flaskr/)" in result.stderr


# --- a package with a factory, SQLite in its instance folder -----------------

def test_flaskr_one_off_command_then_serving_with_its_database(containers, app_images, volume):
    image = app_images("flaskr")
    data = ("-v", f"{volume}:/app/instance")
    # A one-off command acts on the app, not on a sample.
    init = containers.run_once("flask", "init-db", image=image, docker_args=data)
    assert init.returncode == 0, init.stderr
    assert "Initialized the database in /app/instance/flaskr.sqlite" in init.stdout
    routes = containers.run_once("flask", "routes", image=image)
    assert "notes.add" in routes.stdout and "api_hello" not in routes.stdout
    c = serving(containers, image, docker_args=data)
    token = uuid.uuid4().hex
    assert c.request("/notes", method="POST", body=f"body={token}".encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 201
    assert token in c.request("/").text
    # The app's own static folder, inside the package, served by nginx.
    style = c.request("/static/style.css")
    assert style.status == 200 and "flaskr's own style" in style.text and "etag" in style.headers


def test_sqlite_in_rollback_mode_under_several_processes_is_named_once(containers, app_images, volume):
    # SQLite's default journal locks the whole file per writer: with 4
    # processes, Superset's SQL Lab met "database is locked". The start says
    # so, naming the file and the fix; in WAL mode, or one process, nothing.
    image, data = app_images("flaskr"), ("-v", f"{volume}:/app/instance")
    assert containers.run_once("flask", "init-db", image=image, docker_args=data).returncode == 0
    said = "/app/instance/flaskr.sqlite is an SQLite database in rollback-journal mode, written by 4 uWSGI"
    c = serving(containers, image, docker_args=data, env={"UWSGI_PROCESSES": "4"})
    assert c.logs().count(said) == 1
    assert said not in serving(containers, image, docker_args=data, env={"UWSGI_PROCESSES": "1"}).logs()
    # The fix it names, run as given: with what the image has (no sqlite3 shell).
    fix = re.search(r"turn on write-ahead logging once \((python3 -c '[^']*')\)", c.logs())
    assert fix, c.logs()
    assert containers.run_once(*shlex.split(fix.group(1)), image=image, docker_args=data).returncode == 0
    c = serving(containers, image, docker_args=data, env={"UWSGI_PROCESSES": "4"})
    assert "rollback-journal" not in c.logs()
    assert c.request("/").status == 200


@pytest.mark.parametrize("docker_args", [
    (),  # the image's user, 10001
    ("--user", "12345:0"),  # any uid in group 0, as OpenShift runs it
    ("--read-only", "--tmpfs", "/tmp"),  # a read-only root: only the volume is writable
], ids=["uid-10001", "uid-12345-gid-0", "read-only"])
def test_the_instance_volume_is_writable(containers, app_images, volume, docker_args):
    image = app_images("flaskr")
    data = ("-v", f"{volume}:/app/instance")
    init = containers.run_once("flask", "init-db", image=image, docker_args=(*data, *docker_args))
    assert init.returncode == 0, init.stderr
    c = serving(containers, image, docker_args=(*data, *docker_args))
    resp = c.request("/notes", method="POST", body=b"body=written",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 201, resp.text
    assert resp.json() == {"count": 1}


def test_flaskr_in_debug_mode(containers, app_images, volume):
    image = app_images("flaskr")
    containers.run_once("flask", "init-db", image=image, docker_args=("-v", f"{volume}:/app/instance"))
    c = serving(containers, image, "-d", "debug", docker_args=("-v", f"{volume}:/app/instance"))
    assert c.request("/whoami").json()["app"] == "flaskr"
    assert "flaskr's own style" in c.request("/static/style.css").text


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
@pytest.mark.parametrize("value, works", [("flaskr", True), ("flaskr:create_app()", True),
                                          ("flaskr:create_app({'TESTING': True})", True),
                                          ("flaskr:create_app", False)])
def test_app_module_forms_in_both_modes(containers, app_images, mode_args, value, works):
    image = app_images("flaskr")
    if works:
        c = serving(containers, image, *mode_args, env={"APP_MODULE": value}, ready="/whoami")
        assert c.request("/whoami").json()["app"] == "flaskr"
        return
    c = containers.run(*mode_args, image=image, env={"APP_MODULE": value})
    assert c.wait_exit(timeout=30) == 2
    assert "an app factory, not an app. Call it: APP_MODULE='flaskr:create_app()'" in c.logs()
    # Production never started nginx. (Debug mode's server binds its port
    # before its child process loads the app, then exits with the child.)
    assert "flaskbox: serving" not in c.logs()


# --- Flask-SQLAlchemy and Flask-Migrate --------------------------------------

@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_migrations_run_from_a_hook_and_survive_restarts(containers, app_images, volume, mode_args):
    image = app_images("migrate")
    c = serving(containers, image, *mode_args, docker_args=("-v", f"{volume}:/app/instance"), ready="/notes")
    # The hook ran before the server; the table it created is there.
    assert c.logs().index("running /docker-entrypoint.d/10-migrate.sh") < c.logs().index(
        "Serving Flask app" if mode_args else "flaskbox: serving")
    assert c.request("/notes", method="POST", body=b"body=kept",
                     headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 201
    # A restart runs the hook again: a no-op, and the data is still there.
    docker("restart", c.name)
    c.wait_until(lambda: c.logs().count("running /docker-entrypoint.d/10-migrate.sh") == 2,
                 "the second start")
    c.wait_http("/notes")
    assert c.request("/notes").json() == ["kept"]
    current = containers.run_once("flask", "db", "current", image=image,
                                  docker_args=("-v", f"{volume}:/app/instance"))
    assert "0001 (head)" in current.stdout, current.stderr


# --- tiangolo/uwsgi-nginx-flask's layout and variables -----------------------

@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_tiangolo_layout_runs_unchanged(containers, app_images, mode_args):
    image = app_images("tiangolo")
    c = containers.run(*mode_args, image=image)
    hello = c.wait_http("/hello").json()
    # main.py's app, named by /app/uwsgi.ini; prestart.sh ran first.
    assert hello == {"app": "main", "prestart": True}
    server_started = "Serving Flask app" if mode_args else "serving"
    assert c.logs().index("prestart: preparing") < c.logs().index(server_started)
    if not mode_args:
        assert "`socket = /tmp/uwsgi.sock` left out" in c.logs()


def test_tiangolo_variables_work(containers, app_images):
    image = app_images("tiangolo")
    port = free_port()
    # Its port variable, not ours: PORT is left unset.
    c = containers.run(image=image, port=port, set_port=False, env={
        "LISTEN_PORT": str(port), "NGINX_MAX_UPLOAD": "1m", "STATIC_INDEX": "1",
        "NGINX_WORKER_PROCESSES": "auto", "UWSGI_CHEAPER": "2", "UWSGI_PROCESSES": "4"})
    c.wait_http("/hello")
    assert "tiangolo static index" in c.request("/").text
    assert c.request("/upload", method="POST", body=b"x" * (2 << 20)).status == 413
    assert c.request("/upload", method="POST", body=b"x" * 1000).json() == {"received": 1000}


def test_a_tiangolo_variable_without_an_equivalent_names_ours(containers, app_images):
    result = containers.run_once(image=app_images("tiangolo"), env={"NGINX_WORKER_OPEN_FILES": "4096"})
    assert result.returncode == 2
    assert "NGINX_WORKER_OPEN_FILES='4096' is not a flaskbox setting" in result.stderr
    assert "NGINX_WORKER_CONNECTIONS" in result.stderr


# --- a WSGI app without Flask -------------------------------------------------

@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_a_wsgi_app_without_flask(containers, app_images, mode_args):
    c = serving(containers, app_images("plain"), *mode_args, ready="/x")
    assert c.request("/some/path").text == "plain wsgi /some/path from 127.0.0.1\n"


# --- an app pinning Flask 2.2 -----------------------------------------------

@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_an_app_pinning_flask_2_2(containers, app_images, app_pins, mode_args):
    # 2.2, or on Python 3.14 the oldest that runs there (2.3).
    pinned = app_pins("pinned")
    c = serving(containers, app_images("pinned"), *mode_args, ready="/versions")
    assert c.request("/versions").json() == {"flask": pinned["Flask"], "werkzeug": pinned["Werkzeug"]}
    assert pinned["Flask"] < "3"
    # The start says the tested versions were replaced.
    assert f"Flask 3.1.3 -> {pinned['Flask']}" in c.logs()
    assert f"Werkzeug 3.1.9 -> {pinned['Werkzeug']}" in c.logs()


def test_debug_mode_under_an_older_werkzeug_reloads_on_changes_not_reads(containers, app_images):
    # Werkzeug before 3.0.5 reloads on every watchdog event, and watchdog 6 makes two for
    # each read of a watched file (opened, closed without a write): the health check's
    # imports every 10 s reloaded a pinning app's debug server, and dropped what was in flight.
    c = serving(containers, app_images("pinned"), "-d", "debug", ready="/versions")
    for _ in range(3):
        assert c.exec("cat", "/app/app.py").returncode == 0
    # Then a real change: the observer passes events on in order, so the first reload the
    # log names is this file's, unless a read made one before it.
    made = c.exec("sh", "-c", "echo 'x = 1' > /app/changed.py", user="0")  # (the image's code is root's)
    assert made.returncode == 0, made.stderr
    c.wait_until(lambda: "Detected change" in c.logs(), "a reload for the new file")
    first = next(line for line in c.logs().splitlines() if "Detected change" in line)
    assert "/app/changed.py" in first, c.logs()


def test_tested_versions_are_recorded(image):
    tested = docker("run", "--rm", "--network", "host", "--entrypoint", "cat", image,
                    "/opt/venv/flaskbox-tested.txt").stdout
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    recorded = dict(line.split("==") for line in tested.splitlines() if "==" in line)
    assert {name: recorded.get(name) for name in pins} == pins, json.dumps(recorded)
