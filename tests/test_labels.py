"""The image's OCI labels say where it comes from: source, revision,
version, creation time, licenses and base, as registries and scanners read
them (`docker inspect`); flaskbox's licence ships in the image."""

import json
import os
import re
from datetime import UTC, datetime, timedelta

from conftest import git_revision
from helpers import REPO, docker

PREFIX = "org.opencontainers.image."
KEYS = ("title", "description", "source", "revision", "version", "created", "licenses", "base.name")


def labels(image: str) -> dict[str, str]:
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    return {key[len(PREFIX):]: value for key, value in config["Labels"].items() if key.startswith(PREFIX)}


def base_image() -> str:
    return os.environ.get("BASE_IMAGE") or re.search(
        r"^ARG BASE_IMAGE=(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE).group(1)


def test_every_label_is_set(image):
    found = labels(image)
    assert {key: bool(found.get(key)) for key in KEYS} == dict.fromkeys(KEYS, True), found
    assert found["base.name"] == base_image()


def test_the_suites_image_names_its_commit_and_build_time(image):
    if os.environ.get("FLASKBOX_IMAGE"):
        return  # an image built elsewhere: its labels are its builder's
    found = labels(image)
    assert found["revision"] == git_revision()
    # RFC 3339 in UTC, as the OCI annotations spec asks; made by this run.
    created = datetime.strptime(found["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(0) <= datetime.now(UTC) - created < timedelta(hours=6), found["created"]


def test_a_plain_build_says_what_it_does_not_know(runtime_image):
    # Built without the provenance arguments (docker build . as it is).
    found = labels(runtime_image)
    assert (found["version"], found["revision"], found["created"], found["source"]) == \
        ("dev", "unknown", "unknown", "unknown")
    # flaskbox's licence (LICENSE) by default: the LICENSES build argument.
    assert found["licenses"] == "MIT"
    assert found["base.name"] == base_image()


def test_the_licence_ships_with_the_image(image):
    """LICENSE (MIT) at /usr/share/doc/flaskbox/, beside the SBOM that names
    every bundled component's licence."""
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 flaskbox contributors\n"), text[:80]
    shipped = docker("run", "--rm", "--network", "host", "--entrypoint", "cat", image,
                     "/usr/share/doc/flaskbox/LICENSE").stdout
    assert shipped == text
    assert labels(image)["licenses"] == "MIT"
