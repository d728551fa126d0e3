"""An import that never ends is named, never left to hang: a tutorial's
unguarded app.run() is ignored (its file and line said) and the app served;
past IMPORT_TIMEOUT the start ends with exit 124, saying where the import
waits (a server started at import gets its own advice), whether the master
or lazy-apps workers import; a reload whose new code waits for good keeps
the running code; debug mode shows where the import waits, and serves the
app once the wait ends."""

import re
import time
import uuid
from pathlib import Path

import pytest

from flaskbox.layout import Generation
from helpers import docker, free_port, share_with_container

# A route answering a token only this test's code knows.
ROUTE = '''from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "{token}\\n"
'''

# What tutorials write last: the dev server started at import.
TUTORIAL_RUN = 'app.run(host="0.0.0.0", port=5000)\n'

# An import waiting for a database that never comes (a closed port).
WAIT_FOR_DB = '''

def wait_for_db():
    import socket
    import time
    while True:
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=1).close()  # connect
            return
        except OSError:
            time.sleep(0.2)  # retry


wait_for_db()
'''

# A server that is not Flask's run(), started at import.
WSGIREF_SERVER = '''
from wsgiref.simple_server import make_server

make_server("127.0.0.1", {port}, app).serve_forever()
'''

# An import that waits for a file the test creates: a database started late.
WAIT_FOR_GO = '''

def wait_for_db():
    import os
    import time
    while not os.path.exists("/app/go"):
        time.sleep(0.1)  # wait


wait_for_db()
'''

SERVING_LINE = re.compile(r"serving \S+ on port")


def line_of(source: str, marker: str) -> int:
    """The 1-based line number of the one line of `source` holding `marker`."""
    found = [n for n, text in enumerate(source.splitlines(), 1) if marker in text]
    assert len(found) == 1, (marker, found)
    return found[0]


def write_app(tmp_path: Path, source: str) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "app.py").write_text(source)
    tmp_path.chmod(0o755)
    share_with_container(app)
    return app


def body(container) -> str:
    resp = container.request("/", timeout=5)
    return resp.text if resp.status == 200 else f"<{resp.status}>"


@pytest.mark.parametrize("mode", ["production", "debug"])
def test_a_tutorials_app_run_at_import_is_ignored_and_the_app_served(containers, tmp_path, mode):
    token = uuid.uuid4().hex
    source = ROUTE.format(token=token) + "\n\n" + TUTORIAL_RUN
    app = write_app(tmp_path, source)
    args = ("-d", "debug") if mode == "debug" else ()
    c = containers.run(*args, docker_args=("-v", f"{app}:/app:ro"))
    c.wait_until(lambda: body(c) == f"{token}\n", "the app's own page, despite app.run() at import")
    line = line_of(source, "app.run(")
    assert (f"warning: the app's import called app.run() (/app/app.py, line {line}, in <module>)"
            in c.logs()), c.logs()
    assert c.running(), c.logs()


# Where the import runs: in the master, or (UWSGI_LAZY_APPS=true) in each
# of two workers, which uWSGI forked again and again as each ran out.
WHERE = {"master": {}, "lazy-workers": {"UWSGI_LAZY_APPS": "true", "UWSGI_PROCESSES": "2"}}


@pytest.mark.parametrize("where", WHERE)
def test_an_import_that_waits_for_good_ends_the_start_with_124(containers, tmp_path, figure, where):
    closed = free_port()  # nothing listens there: the database never comes
    source = ROUTE.format(token=uuid.uuid4().hex) + WAIT_FOR_DB.format(port=closed)
    app = write_app(tmp_path, source)
    since = time.time()
    c = containers.run(env={"IMPORT_TIMEOUT": "3", **WHERE[where]}, docker_args=("-v", f"{app}:/app:ro"))
    code = c.wait_exit(timeout=30)
    # The engine's own clock: from the container's start to its exit.
    lasted = c.died_at(since) / 1e9 - c.started_at()
    figure(f"start to exit of an import waiting for good in the {where}, IMPORT_TIMEOUT=3, seconds",
           f"{lasted:.2f}")
    logs = c.logs()
    assert code == 124, logs
    assert 3 <= lasted < 3 + 12, (lasted, logs)
    # Ended by the pool, at once: not by the arbiter's kill 10 s past the
    # timeout (its "nor stop" line), nor with workers forked again and again
    # (at most each of the two, run out at once) until the pool gave up.
    assert "nor stop" not in logs and "in a row" not in logs, logs
    assert logs.count("died :( trying respawn") <= 2, logs
    # Where the loop happened to be as the deadline came: mostly its sleep
    # or its connect, now and then a line between (once, in CI: another).
    places = set(range(line_of(source, "while True:"), line_of(source, "# retry") + 1))
    said = re.search(r"did not import within IMPORT_TIMEOUT \(3 s\): it waits at /app/app\.py, "
                     r"line (\d+), in wait_for_db", logs)
    assert said and int(said[1]) in places, logs
    # Every thread's stack, as faulthandler writes it: the app's frame and
    # the module's own line that called it.
    assert re.search(r'File "/app/app\.py", line \d+ in wait_for_db', logs), logs
    call = len(source.splitlines())  # the module's last line: wait_for_db()
    assert f'File "/app/app.py", line {call} in <module>' in logs, logs
    assert "not serving" in logs and not SERVING_LINE.search(logs), logs
    assert c.stdout_lines() == [], logs


def test_a_server_started_at_import_is_named_with_the_advice(containers, tmp_path):
    source = ROUTE.format(token=uuid.uuid4().hex) + WSGIREF_SERVER.format(port=free_port())
    app = write_app(tmp_path, source)
    c = containers.run(env={"IMPORT_TIMEOUT": "3"}, docker_args=("-v", f"{app}:/app:ro"))
    code = c.wait_exit(timeout=30)
    logs = c.logs()
    assert code == 124, logs
    line = line_of(source, "serve_forever()")
    assert (f"did not import within IMPORT_TIMEOUT (3 s): it waits at /app/app.py, line {line}, in <module>; "
            "a server runs in its stack, started at import (waitress.serve, socketio.run, serve_forever): "
            "put that call under `if __name__ == \"__main__\":`") in logs, logs
    assert re.search(r'File "[^"]*socketserver\.py", line \d+ in serve_forever', logs), logs
    assert not SERVING_LINE.search(logs) and c.stdout_lines() == [], logs


def test_a_reload_whose_import_waits_for_good_keeps_the_running_code(containers, tmp_path):
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    app = write_app(tmp_path, ROUTE.format(token=old))
    c = containers.run(env={"IMPORT_TIMEOUT": "3"}, docker_args=("-v", f"{app}:/app:ro"))
    c.wait_until(lambda: body(c) == f"{old}\n", "the first code served")
    (app / "app.py").write_text(ROUTE.format(token=new) + WAIT_FOR_DB.format(port=free_port()))
    share_with_container(app)
    docker("kill", "-s", "HUP", c.name)
    answers = []

    def refused_and_still_old():
        try:
            answers.append(body(c))
        except OSError as exc:  # wait_until would pass over it: a failed request counts
            answers.append(repr(exc))
        logs = c.logs()
        return ("SIGHUP: APP_MODULE='app' did not import within IMPORT_TIMEOUT (3 s" in logs
                and "still serving the code loaded before" in logs)

    c.wait_until(refused_and_still_old, "the reload refused past IMPORT_TIMEOUT", timeout=30, interval=0.2)
    answers += [body(c) for _ in range(10)]
    assert set(answers) == {f"{old}\n"}, (set(answers), c.logs())
    assert "it waits at /app/app.py, line" in c.logs(), c.logs()
    assert c.running(), c.logs()


def test_debug_mode_shows_where_the_import_waits_and_serves_once_it_ends(containers, tmp_path):
    token = uuid.uuid4().hex
    app = write_app(tmp_path, ROUTE.format(token=token) + WAIT_FOR_GO)
    c = containers.run("-d", "debug", env={"IMPORT_TIMEOUT": "2"}, docker_args=("-v", f"{app}:/app:ro"))
    reminder = "APP_MODULE='app' has been importing for 2 s (IMPORT_TIMEOUT) and goes on waiting"
    c.wait_until(lambda: reminder in c.logs(), "the reminder past IMPORT_TIMEOUT", timeout=30)
    logs = c.logs()
    assert re.search(r'File "/app/app\.py", line \d+ in wait_for_db', logs), logs
    assert c.running(), logs
    (app / "go").write_text("")
    share_with_container(app)
    c.wait_until(lambda: body(c) == f"{token}\n", "the page, once the import's wait ended", timeout=30)
    assert c.running(), c.logs()


def test_the_stacks_of_an_import_that_ran_out_are_found_whoever_dumped_them(tmp_path):
    """In process: the master's file, or a lazy-apps worker's own; an empty
    one (a deadline that never came, a worker ended first) is none."""
    gen = Generation(tmp_path)
    assert gen.import_stacks_dumped() is None
    gen.import_stacks.write_text("")
    gen.import_stacks_of(12).write_text("")
    assert gen.import_stacks_dumped() is None
    gen.import_stacks_of(34).write_text('Timeout (0:00:03)!\nThread 0x1 (most recent call first):\n')
    assert gen.import_stacks_dumped() == gen.import_stacks_of(34)
