"""SQLite databases the app writes from several processes in rollback-
journal mode (SQLite's default): a writer locks the whole file, readers
wait on it, and under load a connection waits past its timeout and fails
with "database is locked" (Superset's SQL Lab, 20 users, 4 processes: in 3
runs of 4). Write-ahead logging lets readers go on beside the one writer.
Said once at start (importing.app_mistakes), for the files the app names
(SQLALCHEMY_DATABASE_URI and its binds, DATABASE) and those in its
instance folder; never changed by the image, which cannot know the file's
other users."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

SUFFIXES = (".db", ".sqlite", ".sqlite3")
MAGIC = b"SQLite format 3\x00"
ROLLBACK = 1  # the header's file format write version: 1 legacy (rollback journal), 2 WAL


def in_rollback_mode(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return len(header) == 20 and header.startswith(MAGIC) and header[18] == ROLLBACK


def named_files(app) -> set[Path]:
    """The database files the app's config and its instance folder hold."""
    config = getattr(app, "config", {})
    uris = [config.get("SQLALCHEMY_DATABASE_URI"), *(config.get("SQLALCHEMY_BINDS") or {}).values(),
            config.get("DATABASE")]
    files = set()
    for uri in uris:
        if isinstance(uri, str) and uri.startswith("sqlite:///"):
            files.add(Path(uri.removeprefix("sqlite:///").split("?")[0]))
        elif isinstance(uri, str) and uri.endswith(SUFFIXES) and "://" not in uri:
            files.add(Path(uri))
    instance = getattr(app, "instance_path", None)
    if instance and Path(instance).is_dir():
        files.update(path for path in Path(instance).iterdir() if path.suffix in SUFFIXES)
    return files


def warnings(app, processes: int) -> list[str]:
    if processes < 2:
        return []
    try:
        files = named_files(app)
    except Exception:  # an app's odd config, an instance folder it may not list: a hint, no more
        return []
    return [f"{path} is an SQLite database in rollback-journal mode, written by {processes} uWSGI processes: "
            "under load their writes lock each other out and fail with \"database is locked\"; turn on "
            f"write-ahead logging once ({wal_command(path)}) and give connections a busy timeout "
            "(docs/your-app.md, \"SQLite under several processes\")"
            for path in sorted(files) if in_rollback_mode(path)]


def wal_command(path: Path) -> str:
    """The command that turns WAL on, with what the image has: its Python
    (it has no sqlite3 shell)."""
    program = f"import sqlite3; sqlite3.connect({json.dumps(str(path))}).execute(\"PRAGMA journal_mode=WAL\")"
    return f"python3 -c {shlex.quote(program)}"
