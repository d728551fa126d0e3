"""Debug mode's health check follows the app, not just the port: an app
that fails to load (every request a traceback) is unhealthy, and healthy
again once a save fixes it. (In production such an app stops the container:
test_broken_app.py.)"""

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
