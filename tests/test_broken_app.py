"""A broken app stops the container at once, non-zero, with the reason in the
log: never a container that serves 502s forever."""

import subprocess
import sys
import time
import uuid

import pytest

from helpers import REPO, docker, share_with_container

BROKEN = {
    "import-error": ("import no_such_package_xyz\n", "app:app",
                     ["ModuleNotFoundError: No module named 'no_such_package_xyz'", "Traceback",
                      "your app imports no_such_package_xyz, which is not installed"]),
    "no-such-module": ("", "nope:app",
                       ["there is no module nope in /app", "expected a module or package of your app"]),
    "syntax-error": ("from flask import Flask\napp = Flask(__name__\n", "app:app", ["SyntaxError"]),
    "missing-callable": ("from flask import Flask\napplication = Flask(__name__)\n", "app:app",
                         ["has no attribute 'app'", "APP_MODULE='app:app'"]),
}


def test_a_missing_package_listed_in_requirements_says_how_to_install_it(containers, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("import no_such_package_xyz\n")
    (app / "requirements.txt").write_text("no_such_package_xyz==1.0\n")
    tmp_path.chmod(0o755)
    share_with_container(app)
    c = containers.run(env={"APP_MODULE": "app:app"}, docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=10) == 22, c.logs()
    logs = c.logs()
    assert ("though /app/requirements.txt asks for it ('no_such_package_xyz==1.0'): the image was built "
            "without installing it") in logs, logs
    assert "pip install --no-cache-dir -r requirements.txt" in logs, logs
    assert "INSTALL_ON_START=1" in logs and "docs/your-app.md" in logs, logs


@pytest.mark.parametrize("case", BROKEN)
def test_broken_app_exits_non_zero_within_10_seconds(containers, tmp_path, case, figure):
    source, module, messages = BROKEN[case]
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(source)
    tmp_path.chmod(0o755)
    share_with_container(app)
    started = time.monotonic()
    c = containers.run(env={"APP_MODULE": module}, docker_args=("-v", f"{app}:/app:ro"))
    code = c.wait_exit(timeout=10)
    elapsed = time.monotonic() - started
    figure(f"exit of a container whose app has a {case}, seconds", f"{elapsed:.2f}")
    assert code != 0, c.logs()
    # A setting that names nothing is bad input: exit code 2.
    assert (code == 2) == (case in ("no-such-module", "missing-callable")), (code, c.logs())
    # nginx never started, so nothing could have answered 502: no "serving"
    # line and not a single access log line (stdout).
    assert "serving " not in c.logs() and c.stdout_lines() == [], c.logs()
    logs = c.logs()
    for message in messages:
        assert message in logs, logs
    # The last word names the setting and says nothing is served.
    assert f"APP_MODULE='{module}'" in logs and "not serving" in logs, logs


def test_with_install_on_start_a_package_added_while_serving_asks_for_a_restart(containers, app_copy):
    # The package comes from a wheel in /app (the container installs nothing
    # from PyPI here), added with its line and its import while debug mode
    # serves: INSTALL_ON_START=1 already installed requirements.txt (there
    # was none), so what installs it now is a restart, not a build.
    from test_install_on_start import add_token_route, build_wheel, requirements

    c = containers.run("-d", "debug", env={"INSTALL_ON_START": "1"}, docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    name, token = f"fbt_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    build_wheel(app_copy / "wheels", name, token)
    (app_copy / "requirements.txt").write_text(requirements(f"{name}==1.0"))
    add_token_route(app_copy, name, "/pkg")
    share_with_container(app_copy)
    c.wait_http("/pkg", status=500, timeout=30)
    logs = c.logs()
    assert (f"your app imports {name}, which is not installed in the image, though /app/requirements.txt "
            f"asks for it ('{name}==1.0'): INSTALL_ON_START=1 installs requirements.txt only as the "
            "container starts, and this start did not install it: restart the container (docker "
            "restart") in logs, logs
    assert "Dockerfile" not in logs and "built without" not in logs, logs
    # The advice works: the restart installs it, and the app serves it.
    docker("restart", c.name, timeout=60)
    assert c.wait_http("/pkg").text == token



# UWSGI_LAZY_APPS=true (an old ini's lazy-apps, as many of tiangolo's
# image's users had it): each of the 4 workers imports the app itself.
MISSING = ["Traceback (most recent call last)", "ModuleNotFoundError: No module named 'no_such_package_xyz'",
           "your app imports no_such_package_xyz, which is not installed"]
LAZY = {
    # Every worker's import fails alike, at once.
    "all-fail": ("import no_such_package_xyz\n", "app:app", 22, MISSING),
    # The first worker's fails; the others are still importing (a 60 s wait)
    # when the master ends the pool.
    "one-fails": ("import os, time\n"
                  "try:\n"
                  "    os.close(os.open('/tmp/first-import', os.O_CREAT | os.O_EXCL | os.O_WRONLY))\n"
                  "except FileExistsError:\n"
                  "    time.sleep(60)\n"
                  "import no_such_package_xyz\n", "app:app", 22, MISSING),
    # Bad input, as when the master loads it: 2, not a pool forked again
    # and again until it gave up (3, "a crash at fork").
    "not-an-app": ("from flask import Flask\napplication = Flask(__name__)\n", "app:app", 2,
                   ["APP_MODULE='app:app': module app has no attribute 'app'",
                    "APP_MODULE='app:app' does not name an app"]),
}


@pytest.mark.parametrize("case", LAZY)
def test_with_lazy_apps_a_failed_import_is_said_once_and_ends_the_other_workers_quietly(containers, tmp_path,
                                                                                         case):
    source, module, code, once = LAZY[case]
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(source)
    tmp_path.chmod(0o755)
    share_with_container(app)
    c = containers.run(env={"APP_MODULE": module, "UWSGI_LAZY_APPS": "true", "UWSGI_PROCESSES": "4"},
                       docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=30) == code, c.logs()
    logs = c.logs()
    # Why, once: not a copy from each worker, nor a KeyboardInterrupt's
    # traceback from each one the master's SIGINT ended in its import.
    for line in once:
        assert logs.count(line) == 1, (line, logs)
    assert "KeyboardInterrupt" not in logs and "DAMN" not in logs, logs
    if case == "one-fails":
        # uWSGI says "failed loading app" of the one worker that did.
        assert logs.count("failed loading app in worker") == 1, logs


def test_a_process_a_lazy_workers_import_forks_gets_pythons_sigint_back():
    """In process: the worker's SIGINT handler while it imports (ends it
    quietly, as uWSGI would) is not the app's, so a child gets
    KeyboardInterrupt back (children.plain_signals), as under plain Python."""
    script = ("import signal; from flaskbox.pool import children, forks; "
              "signal.signal(signal.SIGINT, forks.ended_while_loading); children.plain_signals(); "
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "lib")}).stdout
    assert out == "True\n", out


def test_the_one_to_say_why_is_the_first_and_a_mark_that_cannot_be_made_silences_nobody(tmp_path):
    from flaskbox.pool import wsgi
    mark = tmp_path / "failed"
    assert wsgi.first(mark) and not wsgi.first(mark)
    # A runtime folder that is gone (or a full disk): said by every process, not by none.
    assert wsgi.first(tmp_path / "gone" / "failed")
