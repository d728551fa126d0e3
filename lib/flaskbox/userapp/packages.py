"""The Python packages the image was built and tested with, against the ones
an image built FROM it installed (an app pinning Flask 2.2, or gevent 25.5):
the app's pins win, and the start says so once, truthfully.

- The venv's packages: an app's `pip install` replaces them in place; the
  note names each one replaced.
- gevent's packages live apart, in GEVENT_SITE, which WORKER_CLASS=gevent
  puts at the end of sys.path (gevent_patch.py), so that an app's own
  gevent, greenlet and zope.* in the venv are the ones imported. When what
  is imported then does not fit together (the app's greenlet is older than
  the image's gevent needs), the start refuses, naming both.
- Apps that look made for gevent (gevent pinned, Socket.IO's gevent
  support, `monkey.patch_all` in the WSGI file) under the sync workers get
  one line of advice about WORKER_CLASS.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from ..layout import APP_DIR, GEVENT, GEVENT_SITE, PRODUCTION, VENV

# Written at build time (Dockerfile): `pip freeze` of requirements.txt and of
# gevent's own directory.
TESTED = VENV / "flaskbox-tested.txt"


class ConflictError(Exception):
    """The packages WORKER_CLASS=gevent would import do not fit together."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def tested(path: Path = TESTED) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pins = {}
    for line in lines:
        name, _, version = line.partition("==")
        if version:
            pins[name] = version
    return pins


def gevent_site_names(gevent_site: Path = GEVENT_SITE) -> set[str]:
    return {canonical(dist.metadata["Name"]) for dist in metadata.distributions(path=[str(gevent_site)])}


def venv_distribution(name: str):
    """The app's own copy, in the venv (never gevent's directory, which the
    process running this has not on sys.path)."""
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def site_distribution(name: str, gevent_site: Path = GEVENT_SITE):
    return next(iter(metadata.distributions(name=name, path=[str(gevent_site)])), None)


def effective(name: str, gevent_site: Path = GEVENT_SITE):
    """With WORKER_CLASS=gevent, the copy Python imports: the venv's first."""
    return venv_distribution(name) or site_distribution(name, gevent_site)


# --- versions and requirements, without the packaging library ----------------

def version_key(version: str) -> tuple:
    """3.2.10 > 3.2.9; a pre-release suffix (3.0.0rc1) counts as its number."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4])


OPERATORS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;\s*(.*))?$")


def requirements(dist) -> list[tuple[str, str]]:
    """(name, specifier) of what dist needs on CPython, extras left out;
    a marker this cannot judge leaves the requirement out (never refuse on
    a guess)."""
    found = []
    for line in dist.requires or []:
        match = REQUIREMENT.match(line)
        if not match:
            continue
        name, specifier, marker = match.groups()
        if marker and marker.replace("'", '"').strip() != 'platform_python_implementation == "CPython"':
            continue
        found.append((name, specifier.strip("() ")))
    return found


def satisfies(version: str, specifier: str) -> bool:
    for clause in filter(None, (part.strip() for part in specifier.split(","))):
        match = re.match(r"(>=|<=|==|!=|>|<)\s*([0-9][0-9A-Za-z.*+]*)$", clause)
        if not match or "*" in match.group(2):
            continue  # ~= and wildcards: not judged
        operator, wanted = match.groups()
        if not OPERATORS[operator](version_key(version), version_key(wanted)):
            return False
    return True


# --- what the start says -----------------------------------------------------

def older_pin_hint(exc: BaseException, tested_path: Path = TESTED) -> str | None:
    """For an app that failed to import: when the error comes from inside a
    package the app's image pinned older than the one tested here (Werkzeug
    2.2 uses ast.Str, which Python 3.14 removed), say so: such a version
    may predate the image's Python."""
    tb, innermost = exc.__traceback__, None
    while tb is not None:
        innermost, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
    match = re.search(r"/site-packages/([A-Za-z0-9_]+)", innermost or "")
    if not match:
        return None
    pins = {canonical(name): version for name, version in tested(tested_path).items()}
    for name in metadata.packages_distributions().get(match.group(1), []):
        dist = venv_distribution(name)
        wanted = pins.get(canonical(name))
        if dist is not None and wanted and version_key(dist.version) < version_key(wanted):
            python = ".".join(map(str, sys.version_info[:2]))
            return (f"the error comes from inside {name} {dist.version}, which your image pins below the "
                    f"{wanted} tested here: a version that old may not run on Python {python}, this image's; "
                    "pin a newer one, or build on a base with an older Python (docs/building.md, Bases)")
    return None


def notes(mode: str, worker_class: str, tested_path: Path = TESTED, gevent_site: Path = GEVENT_SITE,
          app_dir: Path = APP_DIR) -> list[str]:
    """Info lines, printed once per start; ConflictError when gevent's
    packages cannot work together."""
    pins = tested(tested_path)
    in_site = gevent_site_names(gevent_site)
    gevent_mode = mode == PRODUCTION and worker_class == GEVENT
    lines = []
    changes = []
    for name, version in pins.items():
        if canonical(name) in in_site:
            continue
        dist = venv_distribution(name)
        installed = dist.version if dist is not None else "removed"
        if installed != version:
            changes.append(f"{name} {version} -> {installed}")
    if changes:
        lines.append(f"your image replaced packages this image was tested with: {', '.join(changes)}; "
                     "flaskbox's own code supports Flask and Werkzeug 2.1 and later (docs/your-app.md, "
                     "pinned dependencies)")
    if gevent_mode:
        lines += gevent_notes(pins, in_site, gevent_site)
    elif mode == PRODUCTION:
        lines += gevent_advice(app_dir)
    return lines


def gevent_notes(pins: dict[str, str], in_site: set[str], gevent_site: Path) -> list[str]:
    own = []
    for name, version in pins.items():
        if canonical(name) not in in_site:
            continue
        dist = venv_distribution(name)
        if dist is not None and dist.version != version:
            own.append(f"{name} {dist.version} (not the image's {version})")
    gevent = effective("gevent", gevent_site)
    if gevent is None:
        return own and [f"WORKER_CLASS=gevent runs your image's {', '.join(own)}"]
    for name, specifier in requirements(gevent):
        needed = effective(name, gevent_site)
        if needed is None or not satisfies(needed.version, specifier):
            whose = "your" if venv_distribution("gevent") is not None else "the image's"
            has = f"{needed.version}" if needed is not None else "none"
            where = f"yours, in {VENV}" if venv_distribution(name) is not None else "the image's"
            raise ConflictError(
                f"WORKER_CLASS=gevent: {whose} gevent {gevent.version} needs {name}{specifier}, and the "
                f"{name} it would import is {has} ({where}): pin a gevent that fits it (or pin gevent and "
                f"{name} together, as pip resolves them), or serve with WORKER_CLASS=sync")
    if not own:
        return []
    return [f"WORKER_CLASS=gevent runs your image's {', '.join(own)}: your pins win over flaskbox's "
            "(tested) ones"]


# Signs in the app's own code, or in its server's configuration, that it
# was written for gevent workers. A package installed is none: Redash pins
# gevent (for a worker of its own) and serves its pages with gunicorn's
# sync workers.
PATCH_ALL = re.compile(r"monkey\s*\.\s*patch_all\s*\(")
GEVENT_SERVER = re.compile(r"""(?:-k|--worker-class)[\s=]+['"]?gevent|worker_class\s*=\s*['"]gevent"""
                           r"""|async_mode\s*=\s*['"]gevent""")
WSGI_FILES = ("wsgi.py", "serve.py", "app.py", "main.py", "gunicorn.conf.py", "gunicorn_config.py")
SERVER_FILES = ("gunicorn.conf.py", "gunicorn_config.py", "Procfile", "entrypoint.sh", "docker-entrypoint.sh",
                "start.sh", "run.sh", "supervisord.conf")


def gevent_advice(app_dir: Path = APP_DIR) -> list[str]:
    """One line when the app's code or its server's configuration says it
    runs on gevent (monkey.patch_all() in its WSGI file; gunicorn's -k
    gevent, worker_class = "gevent" or Socket.IO's async_mode="gevent")
    and WORKER_CLASS is sync."""
    signs = []
    for name in dict.fromkeys(WSGI_FILES + SERVER_FILES):
        try:
            text = (app_dir / name).read_text(errors="replace")
        except OSError:
            continue
        if name in WSGI_FILES and PATCH_ALL.search(text):
            signs.append(f"{name} calls monkey.patch_all()")
        elif GEVENT_SERVER.search(text):
            signs.append(f"{name} asks for gevent ({GEVENT_SERVER.search(text).group(0)})")
    if not signs:
        return []
    return [f"your app looks made for gevent workers ({', '.join(signs[:2])}) and WORKER_CLASS is sync: the "
            "sync workers serve it, but for thousands of open streams or WebSockets, and for Socket.IO's "
            "gevent mode, set WORKER_CLASS=gevent (docs/streaming.md)"]
