"""The start's warning for an SQLite database in rollback-journal mode
written by several uWSGI processes (lib/flaskbox/userapp/sqlite_journal.py), in
process: said for the files the app names and those in its instance
folder, not for WAL or for one process, and never a failed start for an
app's odd config (test_your_app.py proves it in a container)."""

from __future__ import annotations

import sqlite3

from flask import Flask

from flaskbox.userapp import sqlite_journal


def database(path, wal: bool = False):
    with sqlite3.connect(path) as connection:
        if wal:
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
    return path


def test_a_rollback_journal_in_the_instance_folder_is_named(tmp_path):
    app = Flask("shop", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    (tmp_path / "instance").mkdir()
    database(tmp_path / "instance" / "shop.sqlite")
    (warning,) = sqlite_journal.warnings(app, 4)
    assert warning.startswith(f"{tmp_path}/instance/shop.sqlite is an SQLite database in rollback-journal "
                              "mode, written by 4 uWSGI processes")
    assert sqlite_journal.warnings(app, 1) == []


def test_wal_and_other_databases_say_nothing(tmp_path):
    app = Flask("shop", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{database(tmp_path / 'wal.db', wal=True)}"
    app.config["SQLALCHEMY_BINDS"] = {"pg": "postgresql://db/shop", "other": {"url": "sqlite://"}}
    assert sqlite_journal.warnings(app, 4) == []


def test_the_named_file_is_found_by_its_uri(tmp_path):
    app = Flask("shop", root_path=str(tmp_path), instance_path=str(tmp_path / "none"))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{database(tmp_path / 'app.db')}?timeout=20"
    assert [line.split(" ")[0] for line in sqlite_journal.warnings(app, 2)] == [f"{tmp_path}/app.db"]


def test_an_odd_config_is_no_failed_start(tmp_path):
    app = Flask("odd", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_BINDS"] = ["not", "a", "mapping"]
    assert sqlite_journal.warnings(app, 4) == []
