"""Requests are served by a non-root user in both modes."""

import json

import pytest

from helpers import docker, share_with_container


def process_uids(container) -> dict[str, set[str]]:
    """uid -> set of command lines, for every process in the container."""
    found: dict[str, set[str]] = {}
    for _, uid, cmd in container.processes():
        found.setdefault(uid, set()).add(cmd)
    return found


@pytest.mark.parametrize("mode_args, servers", [
    ((), ("nginx: master", "nginx: worker", "uWSGI master", "uWSGI worker")),
    (("-d", "debug"), ("flask",)),
], ids=["production", "debug"])
def test_servers_run_as_non_root(containers, app_copy, mode_args, servers):
    mounts = ("-v", f"{app_copy}:/app") if mode_args else ()
    c = containers.run(*mode_args, docker_args=mounts)
    c.wait_healthy()
    uids = process_uids(c)
    assert "0" not in uids, f"processes running as root: {uids['0']}"
    commands = " | ".join(args for group in uids.values() for args in group)
    for server in servers:
        assert server in commands, commands


def test_started_as_root_the_servers_step_down(containers, image):
    c = containers.run(docker_args=("--user", "0"))
    c.wait_http("/")
    assert c.exec("healthcheck.sh").returncode == 0
    image_user = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["User"]
    uid = image_user.split(":")[0]
    # Nothing keeps root: the entry-point (PID 1) steps down itself, before
    # it starts nginx and uWSGI.
    # (The probe runs as that user too: docker exec would otherwise be root.)
    others = {(pid, owner, cmd) for pid, owner, cmd in c.processes(user=image_user)}
    assert {owner for _, owner, _ in others} == {uid}, others
    assert ("1", uid) in {(pid, owner) for pid, owner, _ in others}
    commands = " | ".join(cmd for _, _, cmd in others)
    assert "nginx: worker process" in commands and "uWSGI worker" in commands
    assert "started as root: continuing as" in c.logs()


def test_commands_other_than_the_servers_keep_the_given_user(containers):
    result = containers.run_once("id", "-u", docker_args=("--user", "0"))
    assert result.stdout.strip() == "0"


HARDENED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def test_arbitrary_uid_with_group_0_serves_fully_locked_down(containers):
    # OpenShift's way: a random uid in group 0, read-only root, no capabilities.
    c = containers.serving(docker_args=("--user", "12345:0", *HARDENED))
    assert c.request("/static/style.css").status == 200
    c.wait_healthy()
    owners = {uid for pid, uid, _ in c.processes() if pid != "1"}
    assert owners == {"12345"}, c.processes()


@pytest.mark.parametrize("mode_args, user", [((), "23456:0"), (("-d", "debug"), "23456:23456")],
                         ids=["production", "debug"])
def test_a_uid_without_a_passwd_entry_has_a_name(containers, tmp_path, mode_args, user):
    # OpenShift's uid, and --user "$(id -u):$(id -g)" as docs/develop.md says: no passwd
    # entry, and getpass.getuser() raised for it (on Python 3.13 and later OSError, which
    # Werkzeug's debugger before 3.1 let through at start). USER names it by its number.
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("import getpass\n\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n"
                                "@app.get('/')\ndef index():\n    return getpass.getuser()\n")
    tmp_path.chmod(0o755)
    share_with_container(app)
    c = containers.run(*mode_args, docker_args=("--user", user, "-v", f"{app}:/app:ro"))
    c.wait_http("/")
    assert c.request("/").text == "23456", c.logs()


def test_uwsgi_socket_is_private_to_the_serving_user(containers):
    c = containers.serving()
    stat = c.exec("stat", "-c", "%a %u", "/tmp/flaskbox/uwsgi/current/uwsgi.sock")
    mode, owner = stat.stdout.split()
    assert mode == "600", stat.stdout
    assert owner == c.exec("id", "-u").stdout.strip()
    # Another uid in the same container cannot connect to it.
    probe = ("import socket; s = socket.socket(socket.AF_UNIX); "
             "s.connect('/tmp/flaskbox/uwsgi/current/uwsgi.sock')")
    other = c.exec("python3", "-c", probe, user="12345:0")
    assert other.returncode != 0 and "PermissionError" in other.stderr, other.stderr
    same = c.exec("python3", "-c", probe)
    assert same.returncode == 0, same.stderr


def test_root_in_debug_mode_steps_down_and_says_what_works(containers, app_copy):
    """--user 0:0 in debug mode (a checkout owned by root, and `--user
    "$(id -u):$(id -g)"` as root says 0:0) still serves as 10001, group 0:
    the debugger runs any code it is sent. The warning names what works
    instead of that flag: the folder writable for group 0."""
    args = ("-d", "debug")
    env = {"WRITABLE_PATHS": "/app/.data/"}
    mounts = ("--user", "0:0", "-v", f"{app_copy}:/app")
    assert app_copy.stat().st_uid == 0  # as the suite runs: root's checkout, mode 755
    c = containers.run(*args, env=env, docker_args=mounts)
    c.wait_http("/")
    logs = c.logs()
    assert "started as root: continuing as 10001:0 (servers never run as root, debug mode included" in logs
    warning = next(line for line in logs.splitlines() if "may not write /app" in line)
    assert "--user 0 changes nothing" in warning and "writable for group 0" in warning, warning
    owners = {(uid, cmd.split()[0]) for _, uid, cmd in c.app_processes(user="10001:0")}
    assert {uid for uid, _ in owners} == {"10001"}, owners
    c.remove()
    # What the warning says works: the folder writable for group 0.
    app_copy.chmod(0o775)
    c = containers.run(*args, env=env, docker_args=mounts)
    c.wait_http("/")
    assert "may not write /app" not in c.logs(), c.logs()
    made = c.exec("mkdir", "/app/.data", user="10001:0")
    assert made.returncode == 0, made.stderr
