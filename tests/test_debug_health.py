"""Debug mode's health check follows the app, not just the port: an app
that fails to load (every request a traceback) is unhealthy, and healthy
again once a save fixes it (in production such an app stops the container:
test_broken_app.py). A volume on /app/instance inside a mounted checkout
(Docker makes its mount point there, root's) is named at start."""

from helpers import share_with_container

GOOD = "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get('/')\ndef index():\n    return 'ok'\n"
BROKEN = "raise RuntimeError('the database is not there')\n"


def test_an_app_that_cannot_load_is_unhealthy_in_debug_mode(containers, tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(BROKEN)
    tmp_path.chmod(0o755)
    share_with_container(app_dir)
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_dir}:/app:ro"))
    c.wait_http("/", status=500)
    result = c.exec("healthcheck.sh")
    assert result.returncode == 1, result.stderr
    assert "the app failed to load (RuntimeError: the database is not there)" in result.stderr
    (app_dir / "app.py").write_text(GOOD)
    c.wait_http("/")
    c.wait_healthy()


def test_a_volume_inside_a_mounted_checkout_is_named(containers, tmp_path, volume):
    # The whole checkout on /app, without instance/, and a named volume on
    # /app/instance: Docker makes the mount point in the checkout, root's,
    # which nothing inside the container can see: the start names the trap.
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(GOOD)
    tmp_path.chmod(0o755)
    share_with_container(app_dir)
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_dir}:/app", "-v", f"{volume}:/app/instance"))
    c.wait_http("/")
    logs = c.logs()
    said = "a volume is mounted on /app/instance inside the folder mounted on /app"
    assert logs.count(said) == 1, logs
    assert "`mkdir instance` in the checkout before the first run" in logs
