"""What to install for a module the app imports and the image lacks: the
name on PyPI, which for some modules is not the module's (cv2 comes from
opencv-python, yaml from PyYAML), and whether requirements.txt already
asks for it (then the image was built without installing it, or, with
INSTALL_ON_START=1, the line came after this start's install).

Run as `python3 -I -m flaskbox.userapp.distributions INSTALL_ON_START` after
a hook failed (lib/hooks.sh), where no module name is known: the same
advice for each package /app/requirements.txt asks for that is not
installed, and nothing when none is missing."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..layout import APP_DIR, GEVENT_SITE

# Modules whose distribution has another name, as tutorials import them.
ELSEWHERE = {
    "attr": "attrs", "bs4": "beautifulsoup4", "cv2": "opencv-python-headless", "Crypto": "pycryptodome",
    "dateutil": "python-dateutil", "docx": "python-docx", "dotenv": "python-dotenv", "fitz": "PyMuPDF",
    "google.protobuf": "protobuf", "jose": "python-jose", "jwt": "PyJWT", "magic": "python-magic",
    "multipart": "python-multipart", "MySQLdb": "mysqlclient", "OpenSSL": "pyOpenSSL", "PIL": "Pillow",
    "psycopg2": "psycopg2-binary", "serial": "pyserial", "skimage": "scikit-image",
    "sklearn": "scikit-learn", "yaml": "PyYAML", "zmq": "pyzmq", "flask_mysqldb": "Flask-MySQLdb",
    "socketio": "python-socketio", "engineio": "python-engineio", "pptx": "python-pptx",
    "telegram": "python-telegram-bot", "Levenshtein": "python-Levenshtein", "ldap": "python-ldap",
}


def normalize(name: str) -> str:
    """PyPI's comparison of names (PEP 503): flask_sqlalchemy is Flask-SQLAlchemy."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(module: str) -> tuple[str, bool]:
    """(the distribution to install, whether that is known rather than guessed)."""
    for name in (module, module.partition(".")[0]):
        if name in ELSEWHERE:
            return ELSEWHERE[name], True
    top = module.partition(".")[0]
    # A Flask extension's module is its name with underscores (Flask-Login).
    return top.replace("_", "-"), top.startswith("flask_")


def lines(requirements: Path) -> list[str]:
    """requirements.txt's lines; none when there is no file."""
    try:
        raw = requirements.read_bytes()
    except OSError:
        return []
    # Windows Notepad saves UTF-16 with a BOM, or UTF-8 with one; pip reads both.
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    return raw.decode(encoding, errors="replace").splitlines()


def listed(requirements: Path, wanted: str) -> str | None:
    """The line of requirements.txt that asks for `wanted`, if one does."""
    for line in lines(requirements):
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#")[0])
        if name and normalize(name.group(1)) == normalize(wanted):
            return line.strip()
    return None


# A line that asks for a package by its name: the name, its extras, then
# nothing, a version, or `@ URL`. Options (-r, -e, --index-url), paths,
# URLs and archives are not names; a line with an environment marker
# (`; sys_platform == "win32"`) may not apply here: all are left out, so
# that what is said missing really is.
BY_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
                     r"(?:(?:===|==|!=|~=|>=|<=|<|>)[^;@]*|@[^;]*)?$")
ARCHIVE = re.compile(r"\.(whl|zip|tgz|tar(\.[a-z0-9]+)?)$", re.IGNORECASE)


def search_path() -> list[str]:
    """Where the app's own process finds packages: this Python's path, and
    what `python3 -I` (hooks.sh) leaves out of it, PYTHONPATH (an image that
    installs with `pip install --target`) and the user's site (`pip install
    --user`); /app itself is the app, not its packages."""
    import site

    extra = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if entry and entry.rstrip("/") != str(APP_DIR)]
    return [*sys.path, *extra, site.getusersitepackages()]


def missing(requirements: Path, gevent_site: Path = GEVENT_SITE) -> list[tuple[str, str]]:
    """(name, line) of each package requirements.txt asks for by name that
    is installed neither where the app finds its packages (with
    INSTALL_ON_START, the virtualenv layered over the image's) nor among the
    image's gevent packages, which WORKER_CLASS=gevent imports."""
    # Imported only now: the app's process imports this module, and a file
    # of the app's own (email.py) may hide what importlib.metadata needs.
    from importlib import metadata

    installed = {normalize(dist.metadata["Name"] or "")
                 for dist in metadata.distributions(path=[*search_path(), str(gevent_site)])}
    found = []
    for line in lines(requirements):
        match = BY_NAME.match(line.split(" #")[0].split("\t#")[0])
        if match and not ARCHIVE.search(match.group(1)) and normalize(match.group(1)) not in installed:
            found.append((match.group(1), line.strip()))
    return found


def listed_advice(install_on_start: bool, it: str = "it") -> str:
    """What to do about a package requirements.txt asks for and the image
    lacks (`it`, or `them`): with INSTALL_ON_START=1 (debug mode), which
    installs only as the container starts, a restart; otherwise, a build
    that installs it."""
    if install_on_start:
        return (f"INSTALL_ON_START=1 installs requirements.txt only as the container starts, and this start "
                f"did not install {it}: restart the container (docker restart, or docker compose restart) to "
                f"install {it}")
    return (f"the image was built without installing {it}. Your Dockerfile needs `RUN pip install "
            "--no-cache-dir -r requirements.txt` after copying the file, as USER root (docs/your-app.md); in "
            f"debug mode, INSTALL_ON_START=1 installs {it} at start")


def install_hint(module: str, requirements: Path, install_on_start: bool = False) -> str:
    """The log's line for a module the app imports that is not installed."""
    wanted, known = distribution(module)
    said = f"your app imports {module}, which is not installed in the image"
    line = listed(requirements, wanted)
    if line is not None:
        return f"{said}, though {requirements} asks for it ({line!r}): {listed_advice(install_on_start)}"
    which = f"the package {wanted}" if known else f"the package that provides it (on PyPI usually {wanted})"
    # The docs' Dockerfile installs requirements.txt from the build context,
    # not from /app: name /app's only where there is one.
    where = requirements if requirements.is_file() else "your requirements.txt"
    if install_on_start:
        return (f"{said}: add {which} to {where} and restart the container (docker restart, or docker "
                "compose restart): INSTALL_ON_START=1 installs requirements.txt as the container starts")
    return (f"{said}: add {which} to {where} and rebuild the image (docs/your-app.md); in debug mode, "
            "INSTALL_ON_START=1 installs requirements.txt at start")


def hook_hint(requirements: Path, install_on_start: bool = False) -> str | None:
    """After a hook failed, where no module name is known: the packages
    requirements.txt asks for that are not installed (a hook that imports
    the app, a migration, fails for them), and what to do; None when none
    is missing, so that a hook failing for its own reasons hears nothing."""
    absent = missing(requirements)
    if not absent:
        return None
    names = ", ".join(f"{name} ({line!r})" for name, line in absent)
    which, it = ("which are", "them") if len(absent) > 1 else ("which is", "it")
    return (f"{requirements} asks for {names}, {which} not installed in the image (a hook that imports your "
            f"app, a migration say, fails for that): {listed_advice(install_on_start, it)}")


def main(argv: list[str]) -> None:
    """lib/hooks.sh, after a failed hook: argv is [INSTALL_ON_START]."""
    hint = hook_hint(APP_DIR / "requirements.txt", argv[:1] == ["1"])
    if hint:
        from ..log import error

        error(hint)


if __name__ == "__main__":
    main(sys.argv[1:])
