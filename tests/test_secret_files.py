"""Secrets as files: VAR_FILE=/path gives the app VAR with the file's
contents, for any variable (a setting or one the app reads), as the
official postgres and mysql images do. Judged first without a container
(flaskbox/start/file_vars.py, its records read back by bash as data), then in real
containers: the app and every mode get the value, `docker inspect` and the
log show only the path, VAR and VAR_FILE both set or an unreadable file
exit 2 naming it. tests/test_swarm.py does the same with `docker secret
create` on a real swarm, tests/test_kubernetes_secrets.py with the
Kubernetes example's Secret volumes."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from flaskbox.start import file_vars
from helpers import REPO, docker, share_with_container


def shell(env: dict[str, str], script: str) -> subprocess.CompletedProcess:
    """bash, with env only, once it has read file_vars' records for env as
    the entry point does (lib/common.sh: flaskbox_assignments, no eval)."""
    reader = f'. "{REPO}/lib/common.sh"; flaskbox_assignments; '
    return subprocess.run(["bash", "-c", reader + script], input=file_vars.assignments(env),
                          env={"PATH": os.environ["PATH"], **env}, capture_output=True, timeout=30)


# --- without a container ------------------------------------------------------------------------

def test_the_file_becomes_the_variable_byte_for_byte(tmp_path):
    secret = tmp_path / "secret"
    # Quotes, a $, a backslash, a line break inside: none is interpreted.
    value = "it's $HOME \\n and `this`\nsecond line"
    secret.write_text(value + "\n\n")  # trailing newlines dropped, as $(< file) drops them
    result = shell({"API_TOKEN_FILE": str(secret)},
                   'printf %s "$API_TOKEN"; printf "|%s|%s" "${API_TOKEN_FILE-unset}" "$FLASKBOX_FILE_VARS"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{value}|unset|API_TOKEN"


def test_every_variable_ending_in_file_is_read(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).write_text(f"value-{name}")
    env = {"SECRET_KEY_FILE": str(tmp_path / "a"), "ALLOWED_HOSTS_FILE": str(tmp_path / "b"),
           "EMPTY_FILE": "", "_FILE": str(tmp_path / "a")}
    assert file_vars.wanted(env) == ["ALLOWED_HOSTS", "SECRET_KEY"]
    result = shell(env, 'printf "%s %s" "$SECRET_KEY" "$ALLOWED_HOSTS"')
    assert result.stdout.decode() == "value-a value-b"


def test_other_tools_path_variables_are_left_alone(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a secret")
    env = {name: str(bundle) for name in file_vars.PATH_VARIABLES}
    assert file_vars.wanted(env) == []
    assert file_vars.assignments(env) == b""


def test_an_apps_own_path_variables_named_in_file_vars_ignore_are_left_alone():
    # LOG_FILE names a file the app makes later: never read, never a refusal.
    env = {"LOG_FILE": "/var/log/app/app.log", "PID_FILE": "/run/app.pid",
           "FILE_VARS_IGNORE": "LOG_FILE, PID_FILE"}
    assert file_vars.wanted(env) == []
    assert file_vars.assignments(env) == b""
    with pytest.raises(file_vars.FileVarError, match="LOG_FILE='/var/log/app/app.log' cannot be read"):
        file_vars.assignments({"LOG_FILE": "/var/log/app/app.log"})


def test_both_set_is_refused():
    with pytest.raises(file_vars.FileVarError) as error:
        file_vars.assignments({"SECRET_KEY": "x", "SECRET_KEY_FILE": "/run/secrets/key"})
    assert str(error.value).startswith("SECRET_KEY and SECRET_KEY_FILE are both set")


def test_an_unreadable_file_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(file_vars.FileVarError) as error:
        file_vars.assignments({"SECRET_KEY_FILE": str(missing)})
    assert str(error.value).startswith(
        f"SECRET_KEY_FILE='{missing}' cannot be read (No such file or directory)")
    with pytest.raises(file_vars.FileVarError) as error:
        file_vars.assignments({"SECRET_KEY_FILE": str(tmp_path)})
    assert f"SECRET_KEY_FILE='{tmp_path}' cannot be read (Is a directory)" in str(error.value)


def test_a_nul_byte_is_refused(tmp_path):
    binary = tmp_path / "binary"
    binary.write_bytes(b"zq7x\0wv9k")
    with pytest.raises(file_vars.FileVarError) as error:
        file_vars.assignments({"KEY_FILE": str(binary)})
    assert "holds a NUL byte" in str(error.value)
    assert "zq7x" not in str(error.value) and "wv9k" not in str(error.value)


def test_tls_paths_are_not_read_as_contents():
    for name in ("TLS_CERT", "TLS_KEY"):
        with pytest.raises(file_vars.FileVarError) as error:
            file_vars.assignments({f"{name}_FILE": "/run/secrets/tls"})
        assert f"{name} is a path already; set {name}=/run/secrets/tls" in str(error.value)


def test_a_message_quoting_a_value_read_from_a_file_names_it_instead():
    env = {"FLASKBOX_FILE_VARS": "PORT SECRET_KEY", "PORT": "s3cr3t", "SECRET_KEY": "k"}
    message = file_vars.redact("PORT='s3cr3t' is not valid; PORT=s3cr3t is below", env)
    assert "s3cr3t" not in message
    hidden = "(the contents of PORT_FILE)"
    assert message == f"PORT={hidden} is not valid; PORT={hidden} is below"
    assert file_vars.notes(env) == ["PORT: read from the file that PORT_FILE names",
                                    "SECRET_KEY: read from the file that SECRET_KEY_FILE names"]


def test_a_second_pass_keeps_the_record(tmp_path):
    (tmp_path / "s").write_text("v")
    records = file_vars.assignments({"FLASKBOX_FILE_VARS": "FIRST", "SECOND_FILE": str(tmp_path / "s")})
    assert records.endswith(b"export\0FLASKBOX_FILE_VARS\0FIRST SECOND\0")


# --- in containers ------------------------------------------------------------------------------

@pytest.fixture
def secret(tmp_path):
    """A file as a docker secret is mounted: root's, mode 0444, holding a
    value that exists nowhere else, with the newline `echo` leaves."""
    def make(mode: int = 0o444) -> tuple[str, str]:
        value = f"secret-{uuid.uuid4().hex}"
        folder = tmp_path / uuid.uuid4().hex[:8]
        folder.mkdir()
        path = folder / "value"
        path.write_text(value + "\n")
        share_with_container(folder)
        path.chmod(mode)
        return str(path), value
    return make


def test_the_app_gets_the_value_and_inspect_shows_only_the_path(containers, fixture_image, secret):
    path, value = secret()
    hosts_path, _ = secret()
    with open(hosts_path, "w") as hosts:
        hosts.write("files.example\n")
    c = containers.run(env={"SECRET_TOKEN_FILE": "/run/secrets/token",
                            "ALLOWED_HOSTS_FILE": "/run/secrets/hosts"},
                       docker_args=("-v", f"{path}:/run/secrets/token:ro",
                                    "-v", f"{hosts_path}:/run/secrets/hosts:ro"),
                       image=fixture_image["image"])
    ok = c.wait_until(lambda: c.request("/env/SECRET_TOKEN", headers={"Host": "files.example"}), "an answer")
    assert ok.status == 200 and ok.json() == {"value": value}, ok.text
    # A setting read from a file acts as one given directly.
    assert c.request("/", headers={"Host": "other.example"}).status == 400
    assert c.request("/env/SECRET_TOKEN_FILE", headers={"Host": "files.example"}).json() == {"value": None}
    env = c.inspect()["Config"]["Env"]
    assert "SECRET_TOKEN_FILE=/run/secrets/token" in env
    assert not [line for line in env if value in line]
    logs = c.logs()
    assert "SECRET_TOKEN: read from the file that SECRET_TOKEN_FILE names" in logs, logs
    assert value not in logs


@pytest.mark.parametrize("mode", [("-d", "debug"), ("printenv", "SECRET_TOKEN")])
def test_debug_mode_and_a_command_get_it_too(containers, fixture_image, secret, mode):
    path, value = secret()
    args = ("-e", "SECRET_TOKEN_FILE=/run/secrets/token", "-v", f"{path}:/run/secrets/token:ro")
    if mode[0] == "-d":
        c = containers.run(*mode, docker_args=args, image=fixture_image["image"])
        assert c.wait_http("/env/SECRET_TOKEN").json() == {"value": value}
        assert value not in c.logs()
    else:
        result = containers.run_once(*mode, docker_args=args, image=fixture_image["image"])
        assert (result.returncode, result.stdout) == (0, value + "\n"), result.stderr


def test_a_root_only_file_is_read_before_stepping_down(containers, fixture_image, secret):
    # Swarm's `mode: 0400` without `uid:`: root's alone. Started as root,
    # the entry point reads it, then serves as 10001.
    path, value = secret(0o400)
    os.chown(path, 0, 0)
    c = containers.run(env={"SECRET_TOKEN_FILE": "/run/secrets/token"}, image=fixture_image["image"],
                       docker_args=("--user", "0", "-v", f"{path}:/run/secrets/token:ro"))
    assert c.wait_http("/env/SECRET_TOKEN").json() == {"value": value}


def test_docker_exec_flask_gets_it_too(containers, fixture_image, secret):
    # docker exec starts no entry point: the image's flask command reads
    # VAR_FILE itself, so `flask db upgrade` acts on the database a secret
    # names, not on the app's fallback.
    path, value = secret(0o400)
    os.chown(path, 0, 0)
    c = containers.run(env={"SECRET_TOKEN_FILE": "/run/secrets/token"}, image=fixture_image["image"],
                       docker_args=("--user", "0", "-v", f"{path}:/run/secrets/token:ro"))
    c.wait_http("/env/SECRET_TOKEN")
    code = "import os; print('TOKEN', os.environ.get('SECRET_TOKEN'), os.environ.get('SECRET_TOKEN_FILE'))\n"
    shell = docker("exec", "-i", c.name, "flask", "shell", input=code, check=False)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert f"TOKEN {value} None" in shell.stdout, shell.stdout
    # As a user who may not read it: refused, naming the file, not the value.
    refused = c.exec("flask", "routes", user="10001:0")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "SECRET_TOKEN_FILE='/run/secrets/token' cannot be read" in refused.stderr, refused.stderr
    assert value not in refused.stdout + refused.stderr


def test_refusals_exit_2_naming_the_file_and_never_the_value(containers, secret):
    path, value = secret(0o400)
    os.chown(path, 0, 0)
    mount = ("-v", f"{path}:/run/secrets/token:ro")
    cases = {
        # Both set.
        "SECRET_KEY and SECRET_KEY_FILE are both set":
            ({"SECRET_KEY": "x", "SECRET_KEY_FILE": "/run/secrets/token"}, mount),
        # Readable by root only, served as 10001.
        "SECRET_KEY_FILE='/run/secrets/token' cannot be read (Permission denied for uid 10001":
            ({"SECRET_KEY_FILE": "/run/secrets/token"}, mount),
        "SECRET_KEY_FILE='/run/secrets/none' cannot be read (No such file or directory)":
            ({"SECRET_KEY_FILE": "/run/secrets/none"}, ()),
        # A bad setting's value read from a file is named, not quoted.
        "CONNECTIONS_PER_CLIENT=(the contents of CONNECTIONS_PER_CLIENT_FILE) is not valid":
            ({"CONNECTIONS_PER_CLIENT_FILE": "/run/secrets/token"}, ("--user", "0", *mount)),
    }
    for message, (env, args) in cases.items():
        result = containers.run_once(env=env, docker_args=args)
        assert result.returncode == 2, (message, result.stderr)
        assert message in result.stderr, result.stderr
        assert value not in result.stdout + result.stderr
