"""SQLite databases as writable for the group as any other file (issue 31).

The servers and one-off commands run with umask 002 in group 0, so that
what one uid of group 0 writes another may write too (OpenShift runs an
arbitrary uid in group 0, and a volume outlives the uid). SQLite alone does
not follow: it creates a database file with mode 0644 whatever the umask
(SQLITE_DEFAULT_FILE_PERMISSIONS), and another uid then gets "attempt to
write a readonly database". Its journal and WAL files take the database's
mode, so the database file is the only one to fix.

Imported by every Python of the venv (flaskbox_sqlite.pth), this does
nothing until the app imports sqlite3 (directly or through SQLAlchemy);
then `sqlite3.connect` creates a database file that does not exist yet
(or a link's target that does not) itself, empty, with the umask's mode
(0666 less the umask: 0664 under 002, 0644 under the usual 022, as SQLite
would), before SQLite opens it. In-memory databases, URIs (`uri=True`) and
existing files are left to SQLite as they are.
"""

from __future__ import annotations

import functools
import os
import sys

MODULE = "_sqlite3"  # the C module sqlite3.dbapi2 star-imports connect from


def create_with_umask(database) -> None:
    """An empty file at `database` if there is none, mode 0666 less the
    umask; anything in the way (a missing folder, no permission) is left
    for SQLite to report as it always does."""
    try:
        path = os.fsdecode(database)
    except TypeError:
        return
    if path in ("", ":memory:"):
        return
    try:
        # The file a link points at (WRITABLE_PATHS' links from /app into
        # the instance volume): O_EXCL refuses a link itself, and SQLite
        # then made the target through it, 0644.
        fd = os.open(os.path.realpath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError:
        return
    os.close(fd)


def wrap(connect):
    """connect(database, timeout, detect_types, isolation_level,
    check_same_thread, factory, cached_statements, uri, ...), positional or
    by keyword, as the standard library's."""
    @functools.wraps(connect)
    def connect_with_umask(*args, **kwargs):
        database = args[0] if args else kwargs.get("database")
        uri = args[7] if len(args) > 7 else kwargs.get("uri", False)
        if database is not None and not uri:
            create_with_umask(database)
        return connect(*args, **kwargs)

    connect_with_umask.flaskbox_wrapped = True
    return connect_with_umask


class _WrapOnImport:
    """A meta path finder for _sqlite3 only: finds it as Python would, and
    wraps its connect once it is loaded, before sqlite3.dbapi2 copies it."""

    def find_spec(self, name, path=None, target=None):
        if name != MODULE:
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            if not getattr(module.connect, "flaskbox_wrapped", False):
                module.connect = wrap(module.connect)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    if MODULE in sys.modules or any(isinstance(finder, _WrapOnImport) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _WrapOnImport())


install()
