"""Projects described by pyproject.toml build FROM the app-less image as
docs/your-app.md shows: with pip (`pip install -e /app`) for each common build
backend, every one with a readme and a licence file its pyproject.toml names
(setuptools: tests/apps/pyproject, flit_core: pyproject-flit, hatchling:
pyproject-hatch), and with uv from a uv.lock (`uv sync --inexact` into the
image's virtualenv: tests/apps/uvlock, an app, and uvproject, a package built
by uv_build). Each runs what it asked for (Flask 3.0.3, Markdown 3.7) next to
the image's uWSGI, from /app, with /app/instance as its instance folder, in
both modes."""

import fnmatch
import tomllib

import pytest

from conftest import APPS
from helpers import REPO, docker

EXPECTED = {"flask": "3.0.3", "markdown": "3.7", "uwsgi": "2.0.31", "module": "/app/shop/__init__.py",
            "instance": "/app/instance"}


# The fixtures installed with pip: the project itself is installed (editable).
PIP = ["pyproject", "pyproject-flit", "pyproject-hatch"]
UV = ["uvlock", "uvproject"]


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
@pytest.mark.parametrize("fixture", PIP + UV)
def test_a_pyproject_app_runs_what_it_asked_for(containers, app_images, fixture, mode_args):
    c = containers.run(*mode_args, image=app_images(fixture))
    versions = c.wait_http("/versions").json()
    assert {name: versions[name] for name in EXPECTED} == EXPECTED, versions
    if fixture in PIP:
        assert versions["shop"] == "1.4.0"  # the project itself, installed
    assert c.request("/").text == "<h1>shop <em>ready</em></h1>"
    logs = c.logs()
    assert logs.count("Flask 3.1.3 -> 3.0.3") == 1, logs
    # uv sync --inexact left the image's own packages alone: debug mode's
    # reloader still has watchdog.
    assert "needs the watchdog package" not in logs


@pytest.mark.parametrize("fixture", UV)
def test_uv_is_not_left_in_the_image(app_images, fixture):
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", app_images(fixture), "-c",
                    "command -v uv || echo none", check=False)
    assert result.stdout.strip() == "none", result.stdout


@pytest.mark.parametrize("fixture", PIP)
def test_the_pip_recipe_copies_what_the_backend_reads(fixture):
    """The recipe's COPY line takes the readme and the licence file the
    fixture's pyproject.toml names (without them each backend fails the
    build: FileNotFoundError for README.md)."""
    folder = APPS / fixture
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    named = [project["readme"], *project["license-files"]]
    assert all((folder / name).is_file() for name in named), named
    copy = next(line for line in (folder / "Dockerfile").read_text().splitlines()
                if line.startswith("COPY pyproject.toml"))
    patterns = copy.split()[1:-1]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in named), copy
    assert copy in (REPO / "docs" / "your-app.md").read_text(), "the recipe in docs/your-app.md"
