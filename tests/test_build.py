"""Build behaviour: requirements_os.txt, layer caching, what ships."""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import base_build_args, git_revision
from helpers import REPO, build_image, docker

# What .dockerignore lets into the build context (its "!name" lines).
CONTEXT = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
           if line.startswith("!")]


@pytest.fixture
def context(tmp_path):
    """A copy of the build context that a test may edit."""
    shutil.copy2(REPO / ".dockerignore", tmp_path / ".dockerignore")
    for name in CONTEXT:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def scratch_tag():
    tag = f"flaskbox-scratch:{uuid.uuid4().hex[:12]}"
    yield tag
    docker("rmi", "-f", tag, check=False)


def layers(tag: str) -> list[str]:
    return json.loads(docker("image", "inspect", tag).stdout)[0]["RootFS"]["Layers"]


def test_unknown_os_package_fails_the_build_with_apts_error(context, scratch_tag):
    bogus = f"no-such-package-{uuid.uuid4().hex[:8]}"
    (context / "requirements_os.txt").write_text(f"# comment\n{bogus}\n")
    result = build_image(context, scratch_tag, base_build_args(), check=False)
    assert result.returncode != 0
    assert f"Unable to locate package {bogus}" in result.stdout + result.stderr


def test_os_packages_with_comments_and_several_per_line_are_installed(context, scratch_tag, containers):
    (context / "requirements_os.txt").write_text(
        "# tools for the app\n"
        "less jq   # two on one line, with a comment\n"
        "\n"
    )
    build_image(context, scratch_tag, base_build_args())
    result = docker("run", "--rm", "--network", "host", scratch_tag, "jq", "-n", "6*7")
    assert result.stdout.strip() == "42"
    result = docker("run", "--rm", "--network", "host", scratch_tag, "dpkg", "-s", "less")
    assert "Status: install ok installed" in result.stdout
    # --no-install-recommends and the apt lists are removed in the same layer.
    lists = docker("run", "--rm", "--network", "host", scratch_tag,
                   "find", "/var/lib/apt/lists", "-type", "f", "-name", "*Packages*").stdout
    assert lists.strip() == ""


def test_app_only_change_rebuilds_only_the_app_layer(image, context, scratch_tag):
    # Same context, same build args: first as it is, then with an edited app.
    build_image(context, scratch_tag, base_build_args())
    before = layers(scratch_tag)
    source = context / "app" / "app.py"
    source.write_text(source.read_text() + f"\n# edited {uuid.uuid4().hex}\n")
    build_image(context, scratch_tag, base_build_args())
    after = layers(scratch_tag)
    assert len(before) == len(after)
    # Everything under the app (OS packages, the virtualenv with Flask and
    # uWSGI, configs) is reused from the cache; only the app's two layers
    # differ: COPY app/ and the sample fingerprint computed from it.
    assert before[:-2] == after[:-2]
    assert before[-2] != after[-2] and before[-1] != after[-1]


def test_image_metadata(image):
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    if not os.environ.get("FLASKBOX_IMAGE"):
        # Built by the suite from this checkout, with REVISION passed in.
        assert config["Labels"]["org.opencontainers.image.revision"] == git_revision()
    assert config["User"] and not config["User"].startswith(("0", "root"))
    assert set(config["ExposedPorts"]) == {"80/tcp", "5000/tcp"}
    assert config["StopSignal"] == "SIGTERM"
    # The entry-point is PID 1 (it supervises the servers; tini runs the
    # rest), the stop signals held from env on (test_stop_anytime.py).
    assert config["Entrypoint"] == ["/usr/bin/env", "--block-signal=TERM,INT,QUIT",
                                    "/usr/local/bin/entry-point.sh"]
    labels = config["Labels"]
    for key in ("title", "description", "version", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


@pytest.mark.slow  # the venv and uWSGI built again: 3 minutes and more, on the first base only
def test_compiled_wheel_with_bundled_libraries_builds_and_imports(context, scratch_tag, containers):
    # psycopg2-binary carries its own libpq in psycopg2_binary.libs/: the
    # build stage's library scan must skip what the venv itself provides.
    with open(context / "requirements.txt", "a") as f:
        f.write("psycopg2-binary==2.9.13\n")
    # As docs/building.md says after a pin changes: the lock, hashes and all.
    subprocess.run([REPO / "deploy" / "lock.sh", context], check=True, capture_output=True, timeout=300)
    assert "psycopg2-binary==2.9.13" in (context / "requirements.lock").read_text()
    build_image(context, scratch_tag, base_build_args())
    result = docker("run", "--rm", "--network", "host", scratch_tag,
                    "python3", "-c", "import psycopg2; print(psycopg2.__version__.split()[0])")
    assert result.stdout.strip() == "2.9.13"


def test_apt_mirror_rewrites_the_sources(context, scratch_tag):
    # The same archive under another spelling (explicit :80) proves the
    # rewrite without needing a second mirror.
    base = base_build_args().get("BASE_IMAGE") or re.search(
        r"^ARG BASE_IMAGE=(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE).group(1)
    os_release = docker("run", "--rm", "--network", "host", "--entrypoint", "cat", base,
                        "/etc/os-release").stdout
    mirror = ("http://archive.ubuntu.com:80/ubuntu" if "ID=ubuntu" in os_release
              else "http://deb.debian.org:80/debian")
    result = docker("build", "--network", "host", "--target", "base", "-t", scratch_tag,
                    "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"APT_MIRROR={mirror}",
                    str(context), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    script = "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; apt-get update -qq && echo ok"
    sources = docker("run", "--rm", "--network", "host", "--user", "0", scratch_tag, "bash", "-c", script)
    assert mirror in sources.stdout
    assert sources.stdout.strip().endswith("ok"), sources.stderr
