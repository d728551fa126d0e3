"""Rewrite the platform a `docker save` archive records, from stdin to stdout:
    docker save IMAGE | python3 deploy/image-platform.py arm64 | docker load
Engines without the experimental flag ignore `docker import --platform`, and
record the engine's own architecture for a root filesystem bootstrapped for
another (deploy/bootstrap-base-image.sh with ARCH=arm64). Builds FROM such an
image would then say amd64 while holding arm64 programs. The layers stay as
they are; only the image's config changes, and with it the image's id.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile

# Docker's names for Debian's architectures, where they differ.
DOCKER_ARCH = {"armhf": "arm", "armel": "arm", "ppc64el": "ppc64le", "i386": "386"}
VARIANT = {"arm64": "v8", "armhf": "v7", "armel": "v5"}


def add(out: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))


def rewrite(source: tarfile.TarFile, out: tarfile.TarFile, debian_arch: str) -> None:
    members = {m.name: m for m in source.getmembers()}
    manifest = json.loads(source.extractfile("manifest.json").read())
    renamed = {}
    for image in manifest:
        config = json.loads(source.extractfile(image["Config"]).read())
        config["architecture"] = DOCKER_ARCH.get(debian_arch, debian_arch)
        if debian_arch in VARIANT:
            config["variant"] = VARIANT[debian_arch]
        data = json.dumps(config, separators=(",", ":")).encode()
        name = hashlib.sha256(data).hexdigest() + ".json"
        renamed[image["Config"]] = (name, data)
        image["Config"] = name
    for name, member in members.items():
        if name == "manifest.json" or name in renamed or name == "repositories":
            continue
        out.addfile(member, source.extractfile(member) if member.isfile() else None)
    for name, data in renamed.values():
        add(out, name, data)
    add(out, "manifest.json", json.dumps(manifest).encode())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as stream:
        # A streamed archive cannot be read twice: hold it in memory (a base
        # image is about 150 MB).
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as copy:
            for member in stream:
                copy.addfile(member, stream.extractfile(member) if member.isfile() else None)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r") as source, \
            tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as out:
        rewrite(source, out, argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
