"""uWSGI's wheel, kept between builds on a base of another architecture
(debian12-arm64, under qemu emulation), where compiling it takes minutes
of an emulated CPU (issue 80).

After such a build, the Dockerfile's uwsgi-wheel stage (from the build's
cache, in seconds) is tagged local/flaskbox-uwsgi-wheel:KEY-ARCH, and the
next build on that base gets it as PREBUILT_UWSGI. KEY names what the wheel
is made of: the Dockerfile's uwsgi stage, the lock's lines of uWSGI and
setuptools, and the base image. The Dockerfile itself checks the wheel's
record against its own lock and packages before it uses it, and compiles
on any difference: a stale image costs a compile, never a wrong wheel. The
image stays in the engine's store, as the bootstrapped bases do, so that
later runs on the machine reuse it; a cold machine compiles once."""

from __future__ import annotations

import functools
import hashlib
import re

from helpers import REPO, build_image, docker

REPOSITORY = "local/flaskbox-uwsgi-wheel"


@functools.cache
def _name(base: str) -> str | None:
    """The wheel image for builds on BASE when BASE's architecture is not
    the engine's; None for a native base, which compiles in seconds."""
    arch = docker("image", "inspect", "-f", "{{.Architecture}}", base).stdout.strip()
    if arch == docker("version", "-f", "{{.Server.Arch}}").stdout.strip():
        return None
    dockerfile = (REPO / "Dockerfile").read_text()
    stage = re.search(r"^FROM toolchain AS uwsgi$.*?^FROM ", dockerfile, re.MULTILINE | re.DOTALL).group(0)
    lock = re.findall(r"^(?:setuptools|uwsgi)==(?:.*\\\n)*.*$", (REPO / "requirements.lock").read_text(),
                      re.MULTILINE)
    assert len(lock) == 2, lock
    base_id = docker("image", "inspect", "-f", "{{.Id}}", base).stdout.strip()
    key = hashlib.sha256("\n".join([stage, *lock, base_id]).encode()).hexdigest()[:16]
    return f"{REPOSITORY}:{key}-{arch}"


def prebuilt(base: str | None) -> dict[str, str]:
    """PREBUILT_UWSGI for a build on BASE, when an earlier build kept it."""
    name = _name(base) if base else None
    if name and docker("image", "inspect", name, check=False).returncode == 0:
        return {"PREBUILT_UWSGI": name}
    return {}


def keep(build_args: dict[str, str]) -> None:
    """After a build with BUILD_ARGS on a base of another architecture: its
    wheel, tagged for the next, in place of the kept wheels of other keys."""
    name = _name(build_args["BASE_IMAGE"]) if build_args.get("BASE_IMAGE") else None
    if not name:
        return
    build_image(REPO, name, build_args, target="uwsgi-wheel", timeout=600)
    arch = name.rsplit("-", 1)[1]
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY).stdout.split()
    for tag in tags:
        if tag != name and tag.endswith(f"-{arch}"):
            docker("rmi", tag, check=False)
