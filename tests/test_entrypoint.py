"""entry-point.sh: usage, bad input (exit 2, nothing started), passthrough."""

import re
import uuid

import pytest

SERVER_MARKERS = ("Starting uWSGI", "serving ", "Serving Flask app", "Debug mode")


def assert_nothing_started(result):
    output = result.stdout + result.stderr
    for marker in SERVER_MARKERS:
        assert marker not in output, f"a server started: {marker!r} in\n{output}"


def test_help_prints_usage_and_exits_0(containers):
    result = containers.run_once("-h")
    assert result.returncode == 0
    assert "Usage:" in result.stdout and "-d production|debug" in result.stdout
    # The settings and their defaults, from the settings table.
    assert re.search(r"^  REQUEST_TIMEOUT +30$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^  QUEUE_SIZE +4 per worker thread", result.stdout, re.MULTILINE)
    assert_nothing_started(result)


@pytest.mark.parametrize("args, message", [
    (("-x",), "unknown option: -x"),
    (("--debug",), "unknown option"),
    (("-d", "staging"), "'staging' is not a mode"),
    (("-d",), "option -d needs a value"),
    (("-d", "debug", "extra"), "unexpected argument: extra"),
])
def test_bad_options_exit_2_with_usage(containers, args, message):
    result = containers.run_once(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Usage:" in result.stderr
    assert_nothing_started(result)


# Every accepted and refused form is test_settings_forms.py's (no container); here,
# that a refusal reaches the user the same way from each place it is made:
# the mode (entry-point.sh), a setting's form, and a rule across settings.
@pytest.mark.parametrize("env, message", [
    ({"APP_MODE": "staging"}, "APP_MODE='staging' is not a mode"),
    ({"PORT": "abc"}, "PORT='abc' is not valid: expected a port number from 1 to 65535"),
    ({"TRUSTED_PROXIES": "10.0.0.0/8; include /etc/x"}, "TRUSTED_PROXIES='10.0.0.0/8; include /etc/x'"),
    ({"UPLOAD_SPACE": "1m"}, "UPLOAD_SPACE='1m' is smaller than MAX_BODY_SIZE=10m"),
    ({"INSTALL_ON_START": "1"}, "INSTALL_ON_START=1 works in debug mode only"),
])
def test_bad_settings_exit_2_naming_the_variable(containers, env, message):
    result = containers.run_once(env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"flaskbox: error: {message}" in result.stderr
    assert_nothing_started(result)


def test_other_commands_are_executed_as_given(containers):
    result = containers.run_once("python3", "-c", "print(6 * 7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_passthrough_keeps_exit_code_and_arguments(containers):
    token = uuid.uuid4().hex
    result = containers.run_once("bash", "-c", 'echo "$1"; exit 7', "bash", token)
    assert result.returncode == 7
    assert result.stdout.strip() == token


def test_flask_cli_runs_against_the_app(containers):
    result = containers.run_once("flask", "--app", "app:app", "routes")
    assert result.returncode == 0, result.stderr
    assert "/api/hello" in result.stdout


def test_privileged_port_is_refused_clearly_where_it_cannot_be_bound(containers):
    # Tests share the host's network, where non-root may not bind below
    # net.ipv4.ip_unprivileged_port_start (1024 unless lowered).
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    assert start > 80, f"this host lets anyone bind port 80 (ip_unprivileged_port_start={start})"
    result = containers.run_once(env={"PORT": "80"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PORT=80 is below" in result.stderr and "ip_unprivileged_port_start" in result.stderr
    assert_nothing_started(result)
