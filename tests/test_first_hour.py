"""A new user's first hour, as the Chinese Flask tutorials teach it: Chinese
text everywhere, FLASK_APP=app.py, FLASK_ENV, DEBUG = True, a prestart.sh
saved on Windows, a file named email.py, a .env file, a package not
installed, a mount that holds nothing or holds it read-only. Each either
works as `flask run` would, or stops with a line saying what to change."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from helpers import share_with_container

# The tutorials' first app, with a token only this run's files hold.
HELLO = """\
import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "served {token}"


@app.get("/env/<name>")
def env(name):
    return {{"value": os.environ.get(name)}}
"""

# Chinese in a data file read with open() as is, in print(), in the app's
# logger and in a template's file name (uWSGI's embedded Python read and
# wrote ASCII before LANG=C.UTF-8).
CHINESE = """\
import locale
import sys

from flask import Flask, render_template

with open("/app/greeting.txt") as f:
    GREETING = f.read().strip()
print(f"启动：{GREETING}")
app = Flask(__name__)
app.logger.warning("日志：%s", GREETING)


@app.get("/")
def index():
    return render_template("首页.html", greeting=GREETING, fs=sys.getfilesystemencoding(),
                           preferred=locale.getpreferredencoding())
"""

DEBUG_TRUE = """\
from flask import Flask

app = Flask(__name__)
app.config["DEBUG"] = True


@app.get("/")
def index():
    return "served"


@app.get("/divide")
def divide():
    return str(1 / 0)
"""


def mounted(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    """A folder for -v ...:/app holding `files`, readable by the server's uid."""
    app = tmp_path / "app"
    app.mkdir()
    for name, content in files.items():
        path = app / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    tmp_path.chmod(0o755)
    share_with_container(app)
    return app


def token() -> str:
    return uuid.uuid4().hex


def test_chinese_in_files_print_logging_and_template_names_works_in_production(containers, tmp_path):
    secret = token()
    greeting = f"你好，世界 {secret}"
    app = mounted(tmp_path, {"app.py": CHINESE, "greeting.txt": greeting + "\n",
                             "templates/首页.html": "<p>{{ greeting }}</p><p>{{ fs }} {{ preferred }}</p>\n"})
    c = containers.serving(docker_args=("-v", f"{app}:/app:ro"))
    resp = c.request("/")
    assert resp.status == 200, c.logs()
    assert resp.text == f"<p>{greeting}</p><p>utf-8 UTF-8</p>", resp.text
    logs = c.logs()
    assert f"启动：{greeting}" in logs, logs
    assert f"日志：{greeting}" in logs, logs
    assert "\\u4f60" not in logs and "Logging error" not in logs, logs


@pytest.mark.parametrize("variable", ["FLASK_APP", "APP_MODULE"])
def test_a_file_name_for_the_app_is_read_as_its_module(containers, tmp_path, variable):
    secret = token()
    app = mounted(tmp_path, {"app.py": HELLO.format(token=secret)})
    c = containers.serving(env={variable: "app.py"}, docker_args=("-v", f"{app}:/app:ro"))
    assert c.request("/").text == f"served {secret}", c.logs()
    # FLASK_APP is read as APP_MODULE (its alias): the note names the setting.
    assert "APP_MODULE='app.py' read as 'app'" in c.logs(), c.logs()


@pytest.mark.parametrize("value, seen", [("production", "production"), ("development", None)])
def test_flask_env_production_reaches_the_app_and_development_does_not(containers, tmp_path, value, seen):
    app = mounted(tmp_path, {"app.py": HELLO.format(token=token())})
    c = containers.serving(env={"FLASK_ENV": value}, docker_args=("-v", f"{app}:/app:ro"))
    assert c.request("/env/FLASK_ENV").json() == {"value": seen}, c.logs()
    warning = f"FLASK_ENV={value} is removed from the app's environment in production"
    assert (warning in c.logs()) == (seen is None), c.logs()


def test_an_exception_passed_on_by_debug_true_is_answered_500_not_502(containers, tmp_path):
    app = mounted(tmp_path, {"app.py": DEBUG_TRUE})
    c = containers.serving(docker_args=("-v", f"{app}:/app:ro"))
    resp = c.request("/divide")
    assert (resp.status, resp.text.strip()) == (500, "Internal Server Error"), (resp, c.logs())
    assert "warning: the app turns Flask's debug mode on" in c.logs(), c.logs()
    c.wait_until(lambda: "the app passed ZeroDivisionError on" in c.logs(), "the passed exception's line")
    logs = c.logs()
    assert "Traceback (most recent call last)" in logs and "ZeroDivisionError: division by zero" in logs, logs
    # The server is still whole: the next request is answered as usual.
    assert c.request("/").status == 200, c.logs()


def prestart(marker: str, newline: str) -> bytes:
    """tiangolo's prestart.sh, as saved on Windows (CRLF) or fixed (LF)."""
    lines = ["#! /usr/bin/env bash", "set -e", f'echo "prestart {marker}"', ""]
    return newline.join(lines).encode()


def test_a_prestart_with_windows_line_endings_stops_production_naming_dos2unix(containers, tmp_path):
    marker = token()
    app = mounted(tmp_path, {"app.py": HELLO.format(token=token()), "prestart.sh": prestart(marker, "\r\n")})
    c = containers.run(docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=15) == 2, c.logs()
    logs = c.logs()
    assert "hook /app/prestart.sh has Windows line endings (CRLF)" in logs, logs
    # Named before bash ran any of it.
    assert "dos2unix prestart.sh" in logs and marker not in logs, logs


def test_a_prestart_with_windows_line_endings_waits_in_debug_mode_until_saved_with_lf(containers, tmp_path):
    secret, marker = token(), token()
    app = mounted(tmp_path, {"app.py": HELLO.format(token=secret), "prestart.sh": prestart(marker, "\r\n")})
    c = containers.run("-d", "debug", docker_args=("-v", f"{app}:/app"))
    c.wait_until(lambda: "waiting for a change in /app" in c.logs(), "debug mode waiting for a fix")
    assert "has Windows line endings (CRLF)" in c.logs(), c.logs()
    assert c.running() and c.exec("healthcheck.sh").returncode != 0, c.logs()
    (app / "prestart.sh").write_bytes(prestart(marker, "\n"))
    assert c.wait_http("/").text == f"served {secret}", c.logs()
    assert f"prestart {marker}" in c.logs(), c.logs()


def test_an_email_py_hiding_the_standard_module_is_named(containers, tmp_path):
    source = "import email.utils\n\nfrom flask import Flask\n\napp = Flask(__name__)\n"
    app = mounted(tmp_path, {"app.py": source, "email.py": "def send(to, body):\n    print(to, body)\n"})
    c = containers.run(docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=15) == 22, c.logs()
    logs = c.logs()
    assert "/app/email.py (hides email)" in logs and "rename it" in logs, logs


def test_an_empty_mount_says_so_and_how_to_mount_the_project(containers, tmp_path):
    app = mounted(tmp_path, {})
    c = containers.run(docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=15) == 2, c.logs()
    logs = c.logs()
    assert "/app is empty" in logs and '-v "$PWD:/app"' in logs, logs


def test_a_run_py_alone_is_named_as_the_app_module_to_set(containers, tmp_path):
    app = mounted(tmp_path, {"run.py": HELLO.format(token=token())})
    c = containers.run(docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=15) == 2, c.logs()
    assert "set APP_MODULE to the one that makes the app, e.g. APP_MODULE=run" in c.logs(), c.logs()


def test_a_dot_env_without_python_dotenv_is_not_read_and_said_so(containers, tmp_path):
    secret = token()
    app = mounted(tmp_path, {"app.py": HELLO.format(token=token()), ".env": f"SECRET_KEY={secret}\n"})
    c = containers.serving(docker_args=("-v", f"{app}:/app:ro"))
    assert c.request("/env/SECRET_KEY").json() == {"value": None}, c.logs()
    logs = c.logs()
    assert "warning: /app/.env not read: python-dotenv is not installed" in logs, logs
    assert secret not in logs, logs


def test_dot_env_and_flaskenv_are_read_as_flask_run_reads_them(containers, app_images, tmp_path):
    secret, database, given, greeting = token(), token(), token(), token()
    app = mounted(tmp_path, {
        "hello.py": HELLO.format(token=greeting),
        ".env": f"SECRET_KEY={secret}\nDATABASE_URL=sqlite:///{database}.db\nSHARED=env-{secret}\n",
        # .flaskenv names the app, as the tutorials' does.
        ".flaskenv": f"FLASK_APP=hello.py\nSHARED=flaskenv-{greeting}\nGREETING=hello-{greeting}\n",
    })
    c = containers.serving(env={"DATABASE_URL": f"postgresql://{given}"}, image=app_images("habit-dotenv"),
                           docker_args=("-v", f"{app}:/app:ro"))
    assert c.request("/").text == f"served {greeting}", c.logs()
    seen = {name: c.request(f"/env/{name}").json()["value"]
            for name in ("SECRET_KEY", "DATABASE_URL", "SHARED", "GREETING")}
    assert seen == {"SECRET_KEY": secret, "DATABASE_URL": f"postgresql://{given}",  # -e wins
                    "SHARED": f"env-{secret}",  # .env wins over .flaskenv
                    "GREETING": f"hello-{greeting}"}, c.logs()
    logs = c.logs()
    assert "/app/.env: SECRET_KEY, SHARED read" in logs, logs
    assert "/app/.flaskenv: FLASK_APP, GREETING read" in logs, logs
    assert "APP_MODULE='hello.py' read as 'hello'" in logs, logs
    # Names only: not one value of the files is in the log.
    for value in (secret, database, f"hello-{greeting}"):
        assert value not in logs, logs


def test_a_missing_package_names_what_to_add_to_requirements(containers, tmp_path):
    app = mounted(tmp_path, {"app.py": "from flask import Flask\nfrom flask_sqlalchemy import SQLAlchemy\n\n"
                                       "app = Flask(__name__)\ndb = SQLAlchemy(app)\n"})
    c = containers.run(docker_args=("-v", f"{app}:/app:ro"))
    assert c.wait_exit(timeout=15) == 22, c.logs()
    assert "add the package flask-sqlalchemy to your requirements.txt and rebuild" in c.logs(), c.logs()


def test_a_read_only_instance_volume_is_named_and_still_served(containers, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    # Writable by anyone but for the mount: only `:ro` is in the way.
    instance.chmod(0o777)
    tmp_path.chmod(0o755)
    c = containers.serving(docker_args=("-v", f"{instance}:/app/instance:ro"))
    logs = c.logs()
    assert "/app/instance is mounted read-only" in logs and "drop `:ro`" in logs, logs
    c.wait_healthy()


# The Flask tutorial's factory (flaskr) makes its instance folder, and lets the error pass.
MAKES_INSTANCE = """import os

from flask import Flask

app = Flask(__name__)
try:
    os.makedirs(app.instance_path)
except OSError:
    pass


@app.get("/")
def index():
    return "ok"
"""


def test_an_instance_folder_this_uid_may_not_write_is_named_so(containers, tmp_path):
    # flaskr under --user "$(id -u):$(id -g)", its instance folder group 0's (a volume
    # made from the image's): the way is the group. The start had said
    # WRITABLE_PATHS="/app/instance/", which the setting refuses.
    app = mounted(tmp_path, {"app.py": MAKES_INSTANCE, "instance/.keep": ""})
    (app / "instance").chmod(0o2775)  # (Docker gives the tmpfs its mount point's mode)
    c = containers.serving(docker_args=("--user", "23456:23456", "-v", f"{app}:/app:ro",
                                        "--tmpfs", "/app/instance:uid=10001,gid=0,mode=2775"))
    said = ("your app writes in /app/instance, and uid 23456 may not write it (owner 10001:0, mode 2775), so "
            "the app cannot keep data there: run in group 0, which may write it (--user 23456:0)")
    c.wait_until(lambda: said in c.logs(), "the instance folder named")
    assert "WRITABLE_PATHS" not in c.logs(), c.logs()


WRITES_IN_A_REQUEST = """from flask import Flask
import sqlite3

app = Flask(__name__)


@app.get("/")
def index():
    return "ok"


@app.get("/db")
def db():
    sqlite3.connect("test.db").execute("create table if not exists t (x)")
    return "db"
"""


def test_a_write_next_to_the_code_in_a_request_is_named_once(containers, tmp_path):
    # The tutorials' sqlite3.connect("test.db") in a route, /app mounted
    # read-only: the 500 is the app's, and the log says why, once (in each
    # worker process: one here).
    app = mounted(tmp_path, {"app.py": WRITES_IN_A_REQUEST})
    c = containers.serving(env={"UWSGI_PROCESSES": "1"}, docker_args=("-v", f"{app}:/app:ro"))
    assert [c.request("/db").status for _ in range(3)] == [500, 500, 500]
    said = "your app writes next to its code, and the folder mounted on /app is read-only (`:ro`), so " \
           "these were refused: /app/test.db"
    c.wait_until(lambda: said in c.logs(), "the write named")
    assert c.logs().count("these were refused: /app/test.db") == 1, c.logs()
