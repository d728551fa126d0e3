"""The Python packages the image was built and tested with, and the ones an
image built FROM it replaced (an app pinning Flask 2.2, say): the start says
so, since flaskbox's tests ran with the originals."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

# Written at build time (Dockerfile): `pip freeze` of requirements.txt.
TESTED = Path("/opt/venv/flaskbox-tested.txt")


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
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "removed"
        if installed != version:
            changes.append(f"{name} {version} -> {installed}")
    if not changes:
        return []
    return [f"packages differ from the ones this image was tested with: {', '.join(changes)}; flaskbox's "
            "own code supports Flask and Werkzeug 2.2 and later (docs/your-app.md, pinned dependencies)"]
