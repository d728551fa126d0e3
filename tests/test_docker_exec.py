"""`docker exec CONTAINER flask ...` acts on the app the container serves, in
both modes: `flask routes`, `flask shell` and the app's own commands
(flaskr's `init-db`). docker exec starts no entry-point; the image's flask
command (lib/bin/flask, first on PATH) finds the app from the record of the
start, so an APP_MODULE a hook chose counts too."""

import uuid

import pytest

from helpers import docker

MODES = pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])


def shell(container, code: str) -> str:
    """`docker exec -i CONTAINER flask shell` with `code` on its stdin; what it printed."""
    result = docker("exec", "-i", container.name, "flask", "shell", input=code + "\n", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@MODES
def test_flask_routes_shell_and_the_apps_commands(containers, app_images, volume, mode_args):
    c = containers.run(*mode_args, image=app_images("flaskr"), docker_args=("-v", f"{volume}:/app/instance"))
    c.wait_http("/whoami")
    routes = c.exec("flask", "routes")
    assert routes.returncode == 0, routes.stderr
    assert "notes.add" in routes.stdout and "/notes" in routes.stdout, routes.stdout
    # The app's own command, on the instance volume the server uses.
    init = c.exec("flask", "init-db")
    assert init.returncode == 0, init.stderr
    assert "Initialized the database in /app/instance/flaskr.sqlite" in init.stdout
    token = uuid.uuid4().hex
    added = c.request("/notes", method="POST", body=f"body={token}".encode(),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert added.status == 201, added.text
    # flask shell: the served app, in the served mode, reading the same data.
    printed = shell(c, "from flaskr.db import get_db\n"
                       "notes = [row[0] for row in get_db().execute('select body from note')]\n"
                       "print('APP', app.name, app.debug, notes)")
    debug = bool(mode_args)
    assert f"APP flaskr {debug} ['{token}']" in printed, printed


@MODES
def test_an_app_module_a_hook_chose_counts(containers, app_images, tmp_path, mode_args):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "10-app.envsh"
    hook.write_text("export APP_MODULE=\"flaskr:create_app({'TESTING': True, 'EXEC_TOKEN': 'hooked'})\"\n")
    for path in (tmp_path, hooks):
        path.chmod(0o755)
    hook.chmod(0o755)
    c = containers.run(*mode_args, image=app_images("flaskr"),
                       docker_args=("-v", f"{hooks}:/docker-entrypoint.d:ro"))
    c.wait_http("/whoami")
    printed = shell(c, "print('CONFIG', app.testing, app.config.get('EXEC_TOKEN'))")
    assert "CONFIG True hooked" in printed, printed


def test_a_flask_app_you_name_wins(containers, app_images):
    c = containers.run(image=app_images("flaskr"))
    c.wait_http("/whoami")
    # FLASK_APP given to docker exec is the user's choice, as with plain flask.
    other = docker("exec", "-e", "FLASK_APP=flaskr:create_app({'MARK': 'mine'})", "-i", c.name,
                   "flask", "shell", input="print('MARK', app.config.get('MARK'))\n", check=False)
    assert "MARK mine" in other.stdout, other.stdout + other.stderr
