"""Projects described by pyproject.toml build FROM the app-less image as
docs/your-app.md shows: with pip (`pip install -e /app`, tests/apps/pyproject)
and with uv from a uv.lock (`uv sync --inexact` into the image's virtualenv,
tests/apps/uvlock). Each runs what it asked for (Flask 3.0.3, Markdown 3.7)
next to the image's uWSGI, from /app, with /app/instance as its instance
folder, in both modes."""

import pytest

from helpers import docker

EXPECTED = {"flask": "3.0.3", "markdown": "3.7", "uwsgi": "2.0.31", "module": "/app/shop/__init__.py",
            "instance": "/app/instance"}


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
@pytest.mark.parametrize("fixture", ["pyproject", "uvlock"])
def test_a_pyproject_app_runs_what_it_asked_for(containers, app_images, fixture, mode_args):
    c = containers.run(*mode_args, image=app_images(fixture))
    versions = c.wait_http("/versions").json()
    assert {name: versions[name] for name in EXPECTED} == EXPECTED, versions
    if fixture == "pyproject":
        assert versions["shop"] == "1.4.0"  # the project itself, installed
    assert c.request("/").text == "<h1>shop <em>ready</em></h1>"
    logs = c.logs()
    assert logs.count("Flask 3.1.3 -> 3.0.3") == 1, logs
    # uv sync --inexact left the image's own packages alone: debug mode's
    # reloader still has watchdog.
    assert "needs the watchdog package" not in logs


def test_uv_is_not_left_in_the_image(app_images):
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", app_images("uvlock"), "-c",
                    "command -v uv || echo none", check=False)
    assert result.stdout.strip() == "none", result.stdout
