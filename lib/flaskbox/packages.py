"""The Python packages the image was built and tested with, and the ones an
image built FROM it replaced (an app pinning Flask 2.2, say): the start says
so, since flaskbox's tests ran with the originals."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from .settings import GEVENT_SITE

# Written at build time (Dockerfile): `pip freeze` of requirements.txt and of
# gevent's own directory.
TESTED = Path("/opt/venv/flaskbox-tested.txt")


def installed_version(name: str, gevent_site: Path = GEVENT_SITE) -> str:
    """The version in the venv, else in gevent's directory, else "removed"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    found = next(iter(metadata.distributions(name=name, path=[str(gevent_site)])), None)
    return found.version if found is not None else "removed"


def replaced(tested: Path = TESTED) -> list[str]:
    """One note naming every tested package whose installed version differs."""
    try:
        lines = tested.read_text().splitlines()
    except OSError:
        return []
    changes = []
    for line in lines:
        name, _, version = line.partition("==")
        if not version:
            continue
        installed = installed_version(name)
        if installed != version:
            changes.append(f"{name} {version} -> {installed}")
    if not changes:
        return []
    return [f"packages differ from the ones this image was tested with: {', '.join(changes)}; flaskbox's "
            "own code supports Flask and Werkzeug 2.2 and later (docs/your-app.md, pinned dependencies)"]
