"""PREBUILT_UWSGI: a uWSGI wheel from an earlier build (the Dockerfile's
uwsgi-wheel stage, which tests/uwsgi_wheel.py keeps for builds under
emulation) is used only when it was made from this build's lock and
packages, and then the image is the one a compile gives, layer for layer.
A wheel made from anything else is not used: the build compiles instead."""

import json
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import base_build_args
from helpers import REPO, build_image, docker, free_port


@pytest.fixture
def tags():
    """new(): a throwaway image tag, removed after the test."""
    made = []

    def new() -> str:
        made.append(f"flaskbox-scratch:{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield new
    docker("rmi", "-f", *made, check=False)


def layers(tag: str) -> list[str]:
    return json.loads(docker("image", "inspect", tag).stdout)[0]["RootFS"]["Layers"]


def record(image: str) -> str:
    """The wheel image's built-from.txt: what its wheel was made from."""
    container = docker("create", image, "none").stdout.strip()
    try:
        tar = subprocess.run(["docker", "cp", f"{container}:/uwsgi-wheel/built-from.txt", "-"],
                             capture_output=True, check=True, timeout=60).stdout
    finally:
        docker("rm", container, check=False)
    return subprocess.run(["tar", "-xO"], input=tar, capture_output=True, check=True).stdout.decode()


def test_a_wheel_made_from_the_same_builds_the_same_image(image, tags):
    # The suite's image came from this cache: each build here reuses it.
    args = base_build_args()
    compiled, wheel, prebuilt = tags(), tags(), tags()
    build_image(REPO, compiled, args)
    build_image(REPO, wheel, args, target="uwsgi-wheel")
    build_image(REPO, prebuilt, {**args, "PREBUILT_UWSGI": wheel})
    # No two compiles give the same wheel (uWSGI's build stamps its own),
    # so the same layers mean this one was used.
    assert layers(prebuilt) == layers(compiled)


@pytest.mark.parametrize("stale", ["packages", "lock"])
def test_a_wheel_made_from_anything_else_is_not_used(image, tags, tmp_path, stale):
    args = base_build_args()
    wheel = tags()
    build_image(REPO, wheel, args, target="uwsgi-wheel")
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy2(REPO / "Dockerfile", context)
    shutil.copy2(REPO / "requirements.lock", context)
    # A difference of this test's own, so that no build of it is cached.
    token = uuid.uuid4().hex[:8]
    if stale == "packages":
        # The same wheel, as if made before the distribution updated gcc.
        made_from = record(wheel)
        gcc = next(line for line in made_from.splitlines() if line.startswith("gcc:"))
        (tmp_path / "built-from.txt").write_text(made_from.replace(gcc, f"{gcc}~{token}"))
        (tmp_path / "Dockerfile").write_text(f"FROM {wheel} AS kept\nFROM scratch\n"
                                             "COPY --from=kept /uwsgi-wheel/ /uwsgi-wheel/\n"
                                             "COPY built-from.txt /uwsgi-wheel/\n")
        wheel = tags()
        build_image(tmp_path, wheel)
        difference = rf"<\s+{re.escape(gcc)}~{token}"
    else:
        # A lock whose uWSGI sdist has another sha256 than the wheel's.
        lock = (context / "requirements.lock").read_text()
        old = lock.split("uwsgi==", 1)[1].split("--hash=sha256:", 1)[1][:64]
        new = token * 8
        (context / "requirements.lock").write_text(lock.replace(old, new))
        difference = rf">\s+--hash=sha256:{new}"
    # An index nobody answers: only a compile asks it for anything (setuptools first).
    index = f"http://127.0.0.1:{free_port()}/simple"
    result = build_image(context, tags(), {**args, "PREBUILT_UWSGI": wheel, "PIP_INDEX_URL": index},
                         check=False, target="uwsgi-wheel")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(difference, output), output
    assert f"Looking in indexes: {index}" in output
