"""What to install for a module the app imports and the image lacks: the
name on PyPI, which for some modules is not the module's (cv2 comes from
opencv-python, yaml from PyYAML), and whether requirements.txt already
asks for it (then the image was built without installing it)."""

from __future__ import annotations

import re
from pathlib import Path

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


def listed(requirements: Path, wanted: str) -> str | None:
    """The line of requirements.txt that asks for `wanted`, if one does."""
    try:
        raw = requirements.read_bytes()
    except OSError:
        return None
    # Windows Notepad saves UTF-16 with a BOM, or UTF-8 with one; pip reads both.
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    lines = raw.decode(encoding, errors="replace").splitlines()
    for line in lines:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#")[0])
        if name and normalize(name.group(1)) == normalize(wanted):
            return line.strip()
    return None


def install_hint(module: str, requirements: Path) -> str:
    """The log's line for a module the app imports that is not installed."""
    wanted, known = distribution(module)
    said = f"your app imports {module}, which is not installed in the image"
    line = listed(requirements, wanted)
    if line is not None:
        return (f"{said}, though {requirements} asks for it ({line!r}): the image was built without "
                "installing it. Your Dockerfile needs `RUN pip install --no-cache-dir -r requirements.txt` "
                "after copying the file, as USER root (docs/your-app.md); in debug mode, INSTALL_ON_START=1 "
                "installs it at start")
    which = f"the package {wanted}" if known else f"the package that provides it (on PyPI usually {wanted})"
    # The docs' Dockerfile installs requirements.txt from the build context,
    # not from /app: name /app's only where there is one.
    where = requirements if requirements.is_file() else "your requirements.txt"
    return (f"{said}: add {which} to {where} and rebuild the image (docs/your-app.md); in debug mode, "
            "INSTALL_ON_START=1 installs requirements.txt at start")
