"""What flaskbox says of a user's mistake, and what it does about it,
without a container: a port something holds (host.py) or one too low to
bind (ports.py), an import that waits or starts a server (importing.py),
.env files (env_files.py), a file that hides a module (shadows.py), a
requirements.txt (distributions.py)."""

import subprocess
import sys
import types

import flask
import pytest

from fake_host import resolve
from flaskbox.host import Host
from flaskbox.start import env_files, ports
from flaskbox.userapp import distributions, importing, load_failure, shadows
from helpers import REPO

TCP_HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
              "inode\n")
TCP6_HEADER = ("  sl  local_address                         remote_address                        st "
               "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
TAIL = "00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n"


def tcp_line(slot, local, remote, state):
    return f"  {slot:2d}: {local} {remote} {state} {TAIL}"


# --- host.py: who listens, and on which network --------------------------------

@pytest.fixture
def net_root(tmp_path):
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/tcp").write_text(
        TCP_HEADER
        + tcp_line(0, "0100007F:1F90", "00000000:0000", "0A")     # 127.0.0.1:8080, listening
        + tcp_line(1, "0100007F:1F90", "0100007F:D431", "01")     # a connection to it: ignored
        + tcp_line(2, "00000000:0050", "00000000:0000", "0A")     # 0.0.0.0:80
        + tcp_line(3, "0100007F:D431", "0100007F:1F90", "01"))    # the client's end
    (tmp_path / "proc/net/tcp6").write_text(
        TCP6_HEADER
        + tcp_line(0, "00000000000000000000000001000000:1F90", "00000000000000000000000000000000:0000", "0A")
        + tcp_line(1, "00000000000000000000000000000000:238C", "00000000000000000000000000000000:0000", "0A"))
    return tmp_path


def test_listeners_reads_both_tables_and_only_listening_sockets(net_root):
    host = Host(net_root)
    assert host.listeners(8080) == ["127.0.0.1:8080", "[::1]:8080"]
    assert host.listeners(80) == ["0.0.0.0:80"]
    assert host.listeners(9100) == ["[::]:9100"]
    assert host.listeners(54321) == []  # only ESTABLISHED there
    assert Host(net_root / "none").listeners(8080) == []


def interfaces(root, *names, device=()):
    for name in names:
        (root / "sys/class/net" / name).mkdir(parents=True)
        if name in device:
            (root / "sys/class/net" / name / "device").mkdir()


def test_a_network_with_a_real_device_is_the_hosts(tmp_path):
    interfaces(tmp_path, "lo", "eth0", "docker0", device=("eth0",))
    assert Host(tmp_path).host_network() is True


def test_a_network_of_loopback_and_veth_is_a_containers(tmp_path):
    interfaces(tmp_path, "lo", "eth0", "veth1a2b")
    assert Host(tmp_path).host_network() is False
    assert Host(tmp_path / "none").host_network() is False


# --- ports.py: a port below the unprivileged start -----------------------------

def test_too_low_on_the_host_network_names_the_hosts_sysctl_only():
    message = ports.too_low("PORT", 80, 1024, True, 8080)
    assert message.startswith("PORT=80 is below 1024, the lowest port a non-root process may bind here")
    assert "`sysctl -w net.ipv4.ip_unprivileged_port_start=80` on the host" in message
    assert "PORT=8080" in message
    # Neither does anything on the host's network.
    assert "--sysctl" not in message and "-p " not in message and "(-p" not in message


def test_too_low_on_a_container_network_names_publishing_and_sysctl():
    message = ports.too_low("TLS_PORT", 443, 1024, False, 8443)
    assert "set TLS_PORT=8443 and publish it (-p 443:8443)" in message
    assert "--sysctl net.ipv4.ip_unprivileged_port_start=0" in message
    assert "on the host" not in message


# --- importing.py: where an import waits ------------------------------------------

DUMP = """\
Thread 0x00007f3a1c5fe6c0 (most recent call first):
  File "/usr/lib/python3.12/threading.py", line 355 in wait
  File "/usr/lib/python3.12/threading.py", line 655 in wait
  File "/usr/lib/python3/dist-packages/somelib/pool.py", line 40 in _worker

Current thread 0x00007f3a1d8c1740 (most recent call first):
  File "/usr/lib/python3.12/socket.py", line 836 in create_connection
  File "/app/db.py", line 4 in connect
  File "/app/app.py", line 11 in wait_for_db
  File "/app/app.py", line 13 in <module>
  File "<frozen importlib._bootstrap>", line 241 in _call_with_frames_removed
  File "/usr/lib/python3.12/importlib/__init__.py", line 90 in import_module
"""

SERVING_DUMP = """\
Thread 0x00007f3a1c5fe6c0 (most recent call first):
  File "/usr/lib/python3.12/selectors.py", line 415 in select
  File "/usr/lib/python3.12/socketserver.py", line 235 in serve_forever
  File "/usr/lib/python3/dist-packages/werkzeug/serving.py", line 1123 in run_simple

Current thread 0x00007f3a1d8c1740 (most recent call first):
  File "/app/app.py", line 20 in <module>
"""


def test_where_names_the_innermost_frame_of_the_apps_code():
    assert importing.where(DUMP) == ("/app/db.py, line 4, in connect", False)


def test_where_tells_a_server_loop_on_any_stack():
    assert importing.where(SERVING_DUMP) == ("/app/app.py, line 20, in <module>", True)


def test_where_outside_the_apps_code_names_the_innermost_frame():
    outside = DUMP.replace("/app/", "/srv/")
    assert importing.where(outside) == ("/usr/lib/python3.12/threading.py, line 355, in wait", False)
    assert importing.where("") == ("", False)


def test_where_reads_a_real_faulthandler_dump(tmp_path):
    # In a process of its own, as the arbiter's import is: this one may run
    # a server loop of its own (pytest-xdist's worker), which `where` would
    # rightly report.
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    source = "def wait_here(arrived, release):\n    arrived.set()\n    release.wait(30)\n"
    (app_dir / "waiter.py").write_text(source)
    dump = (
        "import faulthandler, importlib.util, sys, threading\n"
        "spec = importlib.util.spec_from_file_location('waiter', sys.argv[1])\n"
        "waiter = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(waiter)\n"
        "arrived, release = threading.Event(), threading.Event()\n"
        "thread = threading.Thread(target=waiter.wait_here, args=(arrived, release))\n"
        "thread.start()\n"
        "assert arrived.wait(10)\n"
        "with open(sys.argv[2], 'w') as file:\n"
        "    faulthandler.dump_traceback(file=file, all_threads=True)\n"
        "release.set()\n"
        "thread.join()\n")
    subprocess.run([sys.executable, "-c", dump, str(app_dir / "waiter.py"), str(tmp_path / "stacks")],
                   check=True, timeout=60)
    stacks = (tmp_path / "stacks").read_text()
    place = f"{app_dir}/waiter.py, line 3, in wait_here"
    assert importing.where(stacks, app_dir=str(app_dir)) == (place, False)


def test_app_run_at_import_returns_at_once_and_names_its_caller(capsys):
    original = flask.Flask.run
    with importing.ServerCalls():
        result, line = flask.Flask(__name__).run(port=1), sys._getframe().f_lineno
    assert result is None
    err = capsys.readouterr().err
    assert f"warning: the app's import called app.run() ({__file__}, line {line}, in " in err
    assert flask.Flask.run is original


def test_app_run_at_import_is_said_once_per_generation(capsys):
    # With lazy-apps each worker imports the app, and each respawn: only the
    # generation's first says it (wsgi.first); the others return as quietly.
    with importing.ServerCalls(says=False):
        assert flask.Flask(__name__).run(port=1) is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("missing", "bad_setting"), [("nope", True), ("no_such_package_xyz", False)])
def test_a_failed_import_not_said_is_judged_as_one_said(capsys, missing, bad_setting):
    # A lazy-apps worker that fails after a sibling did says nothing (wsgi.py),
    # yet ends with the same code: APP_MODULE naming no module is bad input.
    exc = ModuleNotFoundError(f"No module named '{missing}'", name=missing)
    assert load_failure.explain(exc, "nope:app", says=False) is bad_setting
    assert capsys.readouterr().err == ""
    assert load_failure.explain(exc, "nope:app") is bad_setting
    assert missing in capsys.readouterr().err


def test_a_deadline_of_zero_does_nothing_and_one_met_leaves_nothing(tmp_path):
    with importing.Deadline(0, tmp_path / "stacks") as deadline:
        assert deadline.file is None and not (tmp_path / "stacks").exists()
    # 60 s to run an empty block: the dump (and its exit) is cancelled on leaving.
    with importing.Deadline(60, tmp_path / "stacks"):
        assert (tmp_path / "stacks").exists()
    assert not (tmp_path / "stacks").exists()


MAX_BODY = 10 << 20
# The settings as a start resolves them: MAX_BODY_SIZE the image's default,
# or set by the user (then an app limit above it is a mistake).
DEFAULTS = resolve().record()
SET = resolve({"MAX_BODY_SIZE": "10m"}).record()


def flask_app(**config):
    app = flask.Flask("mistakes")
    app.config.update(config)
    return app


def test_an_app_in_flask_debug_mode_is_warned():
    [line] = importing.app_mistakes(flask_app(DEBUG=True), DEFAULTS)
    assert line.startswith("the app turns Flask's debug mode on") and "`-d debug`" in line
    assert importing.app_mistakes(flask_app(), DEFAULTS) == []


def test_an_app_limit_above_a_max_body_size_set_and_its_allowance_is_warned():
    above = MAX_BODY + (64 << 10) + 1
    [line] = importing.app_mistakes(flask_app(MAX_CONTENT_LENGTH=above), SET)
    assert f"MAX_CONTENT_LENGTH ({above} bytes) is above MAX_BODY_SIZE (10m, as set)" in line
    assert "raise MAX_BODY_SIZE to 11m, or unset it" in line
    assert importing.app_mistakes(flask_app(MAX_CONTENT_LENGTH=MAX_BODY + (64 << 10)), SET) == []
    # MAX_BODY_SIZE not set: nginx follows the app's limit, no mistake.
    assert importing.app_mistakes(flask_app(MAX_CONTENT_LENGTH=above), DEFAULTS) == []


def test_flask_socketio_on_sync_workers_taken_in_turn_is_warned():
    # Its official example, unchanged, on the defaults: 3 polls in 9 failed "Invalid session".
    app = flask_app()
    app.extensions["socketio"] = object()
    [line] = importing.app_mistakes(app, DEFAULTS, processes=2)
    assert line.startswith("the app uses Flask-SocketIO") and "set WORKER_CLASS=gevent" in line, line
    for settings, processes in ((DEFAULTS, 1), (resolve({"STICKY_CLIENTS": "1"}).record(), 2),
                                (resolve({"WORKER_CLASS": "gevent"}).record(), 1)):
        assert importing.app_mistakes(app, settings, processes) == []

def test_an_app_limit_that_is_not_a_number_is_warned():
    [line] = importing.app_mistakes(flask_app(MAX_CONTENT_LENGTH="15m"), DEFAULTS)
    assert line.startswith("the app's MAX_CONTENT_LENGTH is '15m', not a number of bytes")
    assert importing.max_content_length(flask_app(MAX_CONTENT_LENGTH="15m")) is None


def test_a_bare_wsgi_callable_has_no_flask_mistakes():
    def app(environ, start_response):
        return []
    app.debug = True
    assert importing.app_mistakes(app, DEFAULTS) == []
    assert importing.max_content_length(app) is None


# --- env_files.py: /app/.env and /app/.flaskenv -----------------------------------

def evaluated(exports: bytes):
    """The variables a shell has once it has read the records as the entry
    point does (lib/common.sh: flaskbox_assignments, no eval)."""
    reader = f'. "{REPO}/lib/common.sh"; flaskbox_assignments && env -0'
    out = subprocess.run(["bash", "-c", reader], input=exports, env={}, capture_output=True,
                         check=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def fake_dotenv(path, encoding="utf-8"):
    with open(path, encoding=encoding) as file:
        pairs = [line.partition("=")[::2] for line in file.read().splitlines() if "=" in line]
    return {name.strip(): value.strip() for name, value in pairs}


@pytest.fixture
def dotenv(monkeypatch):
    # python-dotenv is not in the test venv, and nothing is installed for
    # these tests: a stand-in with its dotenv_values(path, encoding=...)
    # reads KEY=VALUE lines. (So CRLF files, which only the real parser
    # must handle, are not tested here.)
    try:
        import dotenv as real
    except ImportError:
        real = types.ModuleType("dotenv")
        real.dotenv_values = fake_dotenv
        monkeypatch.setitem(sys.modules, "dotenv", real)
    return real


def test_without_python_dotenv_the_files_are_named_not_read(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dotenv", None)
    (tmp_path / ".env").write_text("SECRET_KEY=s3cr3t-value\n")
    exports = env_files.assignments({}, tmp_path)
    env = evaluated(exports)
    assert env[env_files.RECORD] == f"missing-dotenv {tmp_path}/.env"
    [line] = env_files.notes(env)
    assert line.startswith(f"warning: {tmp_path}/.env not read: python-dotenv is not installed")
    assert "s3cr3t-value" not in line and b"SECRET_KEY" not in exports


def test_the_files_variables_reach_the_app_unless_given_with_e(tmp_path, dotenv):
    awkward = "it's $HOME `id` \"q\""
    (tmp_path / ".env").write_text(f"SECRET_KEY=from-dotenv\nDATABASE_URL={awkward}\nNOT-A-NAME=x\n"
                                   "UID=1000\n")
    (tmp_path / ".flaskenv").write_text("SECRET_KEY=from-flaskenv\nFLASK_APP=src/app.py\nDATABASE_URL=no\n")
    env = evaluated(env_files.assignments({"FLASK_APP": "given.py"}, tmp_path))
    assert env["SECRET_KEY"] == "from-dotenv"          # .env wins over .flaskenv
    assert env["DATABASE_URL"] == awkward              # quoted, never expanded
    assert "FLASK_APP" not in env                      # -e wins
    # Not a shell variable's name, or bash's own (readonly: the assignment fails).
    assert "NOT-A-NAME" not in env and "UID" not in env
    assert env_files.notes(env) == [
        f"warning: {tmp_path}/.env: NOT-A-NAME, UID not set: the shell's own names (or not a variable's "
        "name at all), which the container's environment keeps",
        f"{tmp_path}/.env: SECRET_KEY, DATABASE_URL read, as `flask run` reads it "
        "(variables given with -e win)",
        f"{tmp_path}/.flaskenv: every variable in it is set already (-e wins)"]
    # The step down to the serving user runs the entry point again: the
    # first pass's record stands.
    assert env_files.assignments(env, tmp_path) == b""


def test_notes_name_variables_but_never_their_values(tmp_path, dotenv):
    (tmp_path / ".flaskenv").write_text("API_TOKEN=tok-8f2d1c\n")
    env = evaluated(env_files.assignments({}, tmp_path))
    assert env["API_TOKEN"] == "tok-8f2d1c"
    [line] = env_files.notes(env)
    assert "API_TOKEN" in line and "tok-8f2d1c" not in line


# --- shadows.py: a file of the app named like a module ----------------------------

def test_a_file_hiding_a_stdlib_module_is_named(tmp_path):
    (tmp_path / "email.py").write_text("")
    exc = ModuleNotFoundError("No module named 'email.utils'; 'email' is not a package")
    assert shadows.hint(exc, tmp_path).startswith(f"{tmp_path}/email.py (hides email): a file of your app")


def test_a_hiding_file_the_error_does_not_involve_is_not_blamed(tmp_path):
    (tmp_path / "profile.py").write_text("")
    assert shadows.hint(ModuleNotFoundError("No module named 'psycopg2'"), tmp_path) is None


def test_a_package_beside_a_module_of_its_name_is_said(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    module = types.ModuleType("app")
    module.__file__ = str(tmp_path / "app" / "__init__.py")
    assert shadows.package_hides_module(module, tmp_path) == ""
    (tmp_path / "app.py").write_text("")
    said = shadows.package_hides_module(module, tmp_path)
    assert said.startswith(f" ({tmp_path}/app/ is a package, which Python imports instead of "
                           f"{tmp_path}/app.py")


# --- distributions.py: what requirements.txt asks for -----------------------------

def test_a_requirements_file_with_a_bom_is_read_from_its_first_line(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes("Flask_SQLAlchemy==3.1\nrequests\n".encode("utf-8-sig"))
    assert distributions.listed(requirements, "Flask-SQLAlchemy") == "Flask_SQLAlchemy==3.1"
    # Notepad's "Unicode": UTF-16 with a BOM and CRLF, which pip reads too.
    requirements.write_bytes("requests\r\nFlask_SQLAlchemy==3.1\r\n".encode("utf-16"))
    assert distributions.listed(requirements, "flask-sqlalchemy") == "Flask_SQLAlchemy==3.1"


def test_a_requirement_with_an_environment_marker_is_found(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text('# pinned\npkg==1.0 ; python_version>"3"\n')
    assert distributions.listed(requirements, "pkg") == 'pkg==1.0 ; python_version>"3"'
    assert distributions.listed(requirements, "pinned") is None
    assert distributions.listed(tmp_path / "missing.txt", "pkg") is None
