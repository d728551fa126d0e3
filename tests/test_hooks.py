"""Drop-in hooks: /docker-entrypoint.d/*.sh and *.envsh, and /app/prestart.sh."""

import uuid
from pathlib import Path

import pytest


def write(path: Path, text: str, executable: bool = True) -> None:
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)


@pytest.fixture
def hook_dir(tmp_path) -> Path:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    tmp_path.chmod(0o755)
    hooks.chmod(0o755)
    return hooks


def mount(hooks: Path) -> tuple[str, ...]:
    return ("-v", f"{hooks}:/docker-entrypoint.d:ro")


def log_index(logs: str, needle: str) -> int:
    assert needle in logs, f"{needle!r} not in log:\n{logs}"
    return logs.index(needle)


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_hooks_run_in_version_order_and_envsh_exports(containers, fixture_image, hook_dir, mode_args):
    token = uuid.uuid4().hex
    write(hook_dir / "1-env.envsh", f"export HOOK_TOKEN={token}\n")
    write(hook_dir / "2-second.sh", "#!/bin/sh\necho hook-output-2\n")
    write(hook_dir / "10-last.sh", "#!/bin/sh\necho hook-output-10 \"$HOOK_TOKEN\"\n")
    write(hook_dir / "5-not-executable.sh", "#!/bin/sh\necho must-not-run\n", executable=False)
    write(hook_dir / "README.txt", "not a hook\n", executable=False)

    c = containers.run(*mode_args, image=fixture_image["image"], docker_args=mount(hook_dir))
    resp = c.wait_http("/env/HOOK_TOKEN")
    # The exported variable reached the app.
    assert resp.json() == {"value": token}

    logs = c.timeline()
    # sort -V: 1, 2, 10 (a plain sort would put 10 before 2).
    assert (log_index(logs, "sourcing /docker-entrypoint.d/1-env.envsh")
            < log_index(logs, "hook-output-2")
            < log_index(logs, f"hook-output-10 {token}"))
    assert "must-not-run" not in logs
    assert "ignoring /docker-entrypoint.d/5-not-executable.sh: not executable" in logs
    assert "ignoring /docker-entrypoint.d/README.txt" in logs
    # Hooks finish before the server starts.
    server_start = "Starting uWSGI" if not mode_args else "Serving Flask app"
    assert log_index(logs, f"hook-output-10 {token}") < log_index(logs, server_start)


def test_failing_hook_stops_startup_and_is_named(containers, hook_dir):
    write(hook_dir / "20-migrate.sh", "#!/bin/sh\necho migration failed >&2\nexit 3\n")
    c = containers.run(docker_args=mount(hook_dir))
    assert c.wait_exit(timeout=30) == 3
    logs = c.logs()
    assert "hook /docker-entrypoint.d/20-migrate.sh failed with exit code 3" in logs
    assert "migration failed" in logs
    assert "Starting uWSGI" not in logs


def test_quiet_logs_silence_info_but_never_errors(containers, hook_dir):
    write(hook_dir / "1-ok.sh", "#!/bin/sh\ntrue\n")
    write(hook_dir / "2-fail.sh", "#!/bin/sh\nexit 4\n")
    c = containers.run(env={"ENTRYPOINT_QUIET_LOGS": "1"}, docker_args=mount(hook_dir))
    assert c.wait_exit(timeout=30) == 4
    logs = c.logs()
    assert "running /docker-entrypoint.d/1-ok.sh" not in logs
    assert "hook /docker-entrypoint.d/2-fail.sh failed with exit code 4" in logs


def test_quiet_logs_still_serve(containers):
    c = containers.run(env={"ENTRYPOINT_QUIET_LOGS": "1"})
    c.wait_http("/")
    assert "flaskbox: serving" not in c.logs()


def test_app_prestart_sh_runs_before_the_server(containers, app_copy):
    token = uuid.uuid4().hex
    # Not executable, as users of other Flask images often leave it.
    write(app_copy / "prestart.sh", f"echo prestart {token}\n", executable=False)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    logs = c.timeline()
    assert log_index(logs, f"prestart {token}") < log_index(logs, "Starting uWSGI")


def test_failing_prestart_sh_stops_startup(containers, app_copy):
    write(app_copy / "prestart.sh", "exit 5\n", executable=False)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app"))
    assert c.wait_exit(timeout=30) == 5
    assert "hook /app/prestart.sh failed with exit code 5" in c.logs()


def test_symlinked_hooks_run_and_envsh_is_forgiving(containers, fixture_image, hook_dir, tmp_path):
    # Kubernetes mounts ConfigMap files as symlinks; an .envsh may use unset
    # variables and print, like any shell script.
    token = uuid.uuid4().hex
    real = tmp_path / "real"
    real.mkdir()
    real.chmod(0o755)
    write(real / "hook.sh", f"#!/bin/sh\necho linked-hook {token}\n")
    (hook_dir / "1-linked.sh").symlink_to("/real/hook.sh")
    write(hook_dir / "2-env.envsh", f'echo "optional=[$NOT_SET_ANYWHERE]"\nexport ENV_TOKEN={token}\n')
    c = containers.run(image=fixture_image["image"], env={"LOG_FORMAT": "json"},
                       docker_args=(*mount(hook_dir), "-v", f"{real}:/real:ro"))
    assert c.wait_http("/env/ENV_TOKEN").json() == {"value": token}
    logs = c.logs()
    assert f"linked-hook {token}" in logs and "optional=[]" in logs
    # Hook output never lands on stdout, which carries only JSON access logs.
    assert all(line.startswith("{") for line in c.stdout_lines()), c.stdout_lines()


# --- a hook meeting a package the image lacks ---------------------------------

# The migration hook the docs recommend: Flask's CLI imports the app first.
MIGRATE = "flask db upgrade\n"
MISSING = "no_such_package_xyz"


def app_needing_a_missing_package(app_copy: Path, requirements: str | None) -> None:
    source = app_copy / "app.py"
    source.write_text(f"import {MISSING}  # noqa\n" + source.read_text())
    if requirements is not None:
        (app_copy / "requirements.txt").write_text(requirements)
    write(app_copy / "prestart.sh", MIGRATE, executable=False)


def hint(requirements_line: str) -> str:
    return (f"flaskbox: error: /app/requirements.txt asks for {MISSING} ({requirements_line!r}), which is "
            "not installed in the image")


def test_a_failed_hook_names_a_package_requirements_txt_asks_for_and_the_image_lacks(containers, app_copy):
    app_needing_a_missing_package(app_copy, f"Flask\n{MISSING}==1.0\n")
    c = containers.run(docker_args=("-v", f"{app_copy}:/app"))
    # The hook's own exit code (flask's, for a command it does not know):
    # the README's promise for a failed hook.
    assert c.wait_exit(timeout=30) == 2, c.logs()
    logs = c.logs()
    assert f"No module named '{MISSING}'" in logs, logs
    failed = "flaskbox: error: hook /app/prestart.sh failed with exit code 2; not starting"
    # The hint follows the failure, with the app's own import's advice.
    assert log_index(logs, failed) < log_index(logs, hint(f"{MISSING}==1.0")), logs
    assert "the image was built without installing it. Your Dockerfile needs `RUN pip install" in logs
    assert logs.rstrip().endswith("INSTALL_ON_START=1 installs it at start"), logs
    assert "Starting uWSGI" not in logs


def test_a_failed_hook_is_no_false_alarm_when_every_package_is_installed(containers, app_copy):
    # Installed ones (in pip's other spellings), and one for Windows only.
    (app_copy / "requirements.txt").write_text(
        "flask>=2.1\nWerkzeug\nno_such_windows_package==1.0; sys_platform == 'win32'\n")
    write(app_copy / "prestart.sh", "echo migration failed >&2\nexit 5\n", executable=False)
    c = containers.run(docker_args=("-v", f"{app_copy}:/app"))
    assert c.wait_exit(timeout=30) == 5
    logs = c.logs()
    assert "hook /app/prestart.sh failed with exit code 5" in logs
    assert "not installed" not in logs and "requirements.txt" not in logs, logs


def test_in_debug_mode_the_hint_comes_before_the_wait_no_save_can_end(containers, app_copy):
    app_needing_a_missing_package(app_copy, f"{MISSING}==1.0\n")
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    waiting = "debug mode: waiting for a change in /app or in the hooks"
    c.wait_until(lambda: waiting in c.logs(), "the failed hook to be reported", timeout=30)
    logs = c.logs()
    failed = "hook /app/prestart.sh failed with exit code 2 (its output is above)"
    assert log_index(logs, failed) < log_index(logs, hint(f"{MISSING}==1.0")) < log_index(logs, waiting)
    assert "Your Dockerfile needs `RUN pip install" in logs, logs


def test_with_install_on_start_a_line_added_since_the_start_asks_for_a_restart(containers, app_copy):
    # No requirements.txt at start: nothing to install, and nothing listed
    # is missing, so the failed hook's log says nothing of packages.
    app_needing_a_missing_package(app_copy, None)
    c = containers.run("-d", "debug", env={"INSTALL_ON_START": "1"}, docker_args=("-v", f"{app_copy}:/app"))
    waiting = "debug mode: waiting for a change in /app or in the hooks"
    c.wait_until(lambda: waiting in c.logs(), "the failed hook to be reported", timeout=30)
    assert "not installed in the image" not in c.logs(), c.logs()
    # Listed now: the hook runs again, fails again, and the hint says what
    # installs it here: a restart, not a build.
    (app_copy / "requirements.txt").write_text(f"{MISSING}==1.0\n")
    (app_copy / "requirements.txt").chmod(0o644)
    c.wait_until(lambda: hint(f"{MISSING}==1.0") in c.logs(), "the hint after the second run", timeout=30)
    c.wait_until(lambda: c.logs().count(waiting) == 2, "the second wait", timeout=30)
    logs = c.logs()
    assert ("INSTALL_ON_START=1 installs requirements.txt only as the container starts, and this start did "
            "not install it: restart the container (docker restart, or docker compose restart)") in logs, logs
    assert "Dockerfile" not in logs, logs
