"""/app/.env and /app/.flaskenv, read as `flask run` and the `flask` command
read them: with python-dotenv installed, their variables reach the app
unless the environment already sets them (`-e` wins), and .env wins over
.flaskenv. The servers and `docker exec ... flask db upgrade` then see the
same configuration (before, only the flask command did, and a migration
could act on another database than the one served). Without python-dotenv
the files are left alone, as Flask leaves them, and the log says so.

`python3 -m flaskbox env-files` prints the shell's exports (as records it
reads as data: shell.py) early in the entry point, so that .flaskenv's FLASK_APP counts as a setting; the
log's lines (names only, never values) come with the settings' notes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..layout import APP_DIR
from .shell import EXPORT, records

# In the order Flask reads them: a name in the first wins.
FILES = (".env", ".flaskenv")
# What this start read, for notes(): "FILE NAME NAME ...;FILE ..." (no values).
RECORD = "FLASKBOX_ENV_FILES"


def present(app_dir: Path = APP_DIR) -> list[Path]:
    return [app_dir / name for name in FILES if (app_dir / name).is_file()]


# What a shell variable may be called; and bash's own, which an export would
# fail on (readonly) or break (the shell's state): a docker-compose .env's
# UID=1000 stopped the start with "UID: readonly variable".
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BASH_OWN = {"UID", "EUID", "PPID", "BASHPID", "BASHOPTS", "SHELLOPTS", "BASH_VERSINFO", "GROUPS", "HOSTNAME",
            "IFS", "PATH", "PWD", "OLDPWD", "SHLVL", "HOME", "RANDOM", "SECONDS", "LINENO", "OPTIND",
            "EPOCHSECONDS", "EPOCHREALTIME", "SRANDOM"}


def assignments(env: Mapping[str, str], app_dir: Path = APP_DIR) -> bytes:
    """The shell's exports (records: shell.py) for the files' variables that
    env does not set. Once per start: the step down to the serving user runs
    the entry point again, and what the first pass read is then in env
    (RECORD)."""
    files = present(app_dir)
    if not files or RECORD in env:
        return b""
    try:
        from dotenv import dotenv_values
    except ImportError:
        return records([(EXPORT, RECORD, "missing-dotenv " + " ".join(map(str, files)))])
    items, record, taken = [], [], set(env)
    for path in files:
        names = []
        for name, value in dotenv_values(path, encoding="utf-8-sig").items():
            if value is None or name in taken:
                continue
            if not SHELL_NAME.fullmatch(name) or name in BASH_OWN or "\0" in value:
                names.append(f"!{name}")  # said in notes(): not set
                continue
            taken.add(name)
            names.append(name)
            items.append((EXPORT, name, value))
        record.append(" ".join([str(path), *names]))
    items.append((EXPORT, RECORD, ";".join(record)))
    return records(items)


def notes(env: Mapping[str, str] = os.environ) -> list[str]:
    """What was read from the files, for the log."""
    recorded = env.get(RECORD, "")
    if recorded.startswith("missing-dotenv "):
        files = recorded.split()[1:]
        return [f"warning: {' and '.join(files)} not read: python-dotenv is not installed, and without it "
                "Flask reads neither (`flask run` neither). Pass the variables with `docker run --env-file`, "
                "add python-dotenv to requirements.txt to have them read, or keep the file out of the "
                "image (.dockerignore)"]
    out = []
    for entry in filter(None, recorded.split(";")):
        path, *names = entry.split()
        skipped = [name[1:] for name in names if name.startswith("!")]
        names = [name for name in names if not name.startswith("!")]
        if skipped:
            out.append(f"warning: {path}: {', '.join(skipped)} not set: the shell's own names (or not a "
                       "variable's name at all), which the container's environment keeps")
        said = (f"{', '.join(names)} read, as `flask run` reads it (variables given with -e win)" if names
                else "every variable in it is set already (-e wins)")
        out.append(f"{path}: {said}")
    return out
