"""What a loaded Flask app serves as static files, found as Flask finds
them, so that nginx serves the same files with the same caching (static.py
renders it). Run in the uWSGI master once the app is imported (wsgi.py).

- Where: the app's own folder, and each registered blueprint's at the URL
  Flask routes to it (a `<bp>.static` rule of app.url_map: Flask-AppBuilder's
  /static/appbuilder, Flask-Admin's /admin/static). Of two at one URL,
  the first registered, as in Flask; the app's own comes first.
- How long a file may be kept: what Flask would send it with, the app's
  SEND_FILE_MAX_AGE_DEFAULT (None: revalidate each time), or, where the app
  or a blueprint defines get_send_file_max_age, its answer for each file.
- Which files never change: those a bundler's manifest maps a source name
  to (Vite's .vite/manifest.json, webpack's manifest.json and
  asset-manifest.json, Django's staticfiles.json) under another name; nginx
  keeps them for good. Names of an unambiguous fingerprinted shape are
  nginx-static.conf's to match.
- Which static files the app serves itself, where nginx has no folder on
  disk for their URL (app_serves: a line in the start's log): a WSGI
  middleware's around app.wsgi_app (WhiteNoise, as SearXNG's; Werkzeug's
  SharedDataMiddleware), or the app's own routes under its static URL
  when that folder is not there (static_folder=None).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..log import warn
from ..request.passed_on import flask_within
from ..start.manifests import fingerprinted

# An app's own get_send_file_max_age is asked about this many files at most
# (a folder of tens of thousands would slow every start); the rest keep the
# folder's age.
MOST_FILES_ASKED = 20000
RULE_TAIL = "/<path:filename>"
# How many layers around app.wsgi_app are looked through for a static-file
# middleware (ProxyFix(WhiteNoise(...)) is two).
MIDDLEWARE_DEPTH = 8
# What a view calls to send a file from a path in its URL.
SENDERS = frozenset({"send_file", "send_from_directory", "send_static_file"})


@dataclass
class Folder:
    url: str                     # "/static", without a trailing slash
    path: str                    # "/app/static"
    max_age: int | None          # seconds, as Flask sends its files; None: revalidate
    ages: dict[str, int | None] = field(default_factory=dict)  # file URL -> age, where it differs
    forever: list[str] = field(default_factory=list)           # file URLs a manifest fingerprints

    def describe(self) -> dict:
        return {"url": self.url, "path": self.path, "max_age": self.max_age, "ages": self.ages,
                "forever": self.forever}


def describe(app) -> dict:
    """What static.folders reads of the loaded app: its folders, and the
    max age Flask gives its own files (for a folder STATIC_PATH moved).
    An app this cannot read (an odd url_map, a folder it may not list) is
    served as one that is not Flask's: never a start that fails for it."""
    try:
        found = find(app)
        own = None
        if found or _is_flask(app):
            with app.app_context():
                own = _max_age(app, None, None, [])
    except Exception as exc:  # the app's own objects, and its disk
        warn(f"could not read the app's static folders ({type(exc).__name__}: {exc}); nginx serves "
             "STATIC_URL from STATIC_PATH, as for an app that is not Flask's")
        return {"folders": [], "max_age": None}
    return {"folders": [folder.describe() for folder in found], "max_age": own}


def _is_flask(app) -> bool:
    try:
        from flask import Flask
    except ImportError:
        return False
    return isinstance(app, Flask)


def find(app) -> list[Folder]:
    """The app's static folders, its own first; [] for an app that is not
    Flask's (nginx then keeps to STATIC_URL / STATIC_PATH's defaults)."""
    if not _is_flask(app):
        return []
    owners = []
    if app.has_static_folder and app.static_url_path is not None:
        owners.append((app.static_url_path.rstrip("/"), app))
    for rule in app.url_map.iter_rules():
        name, _, endpoint = rule.endpoint.rpartition(".")
        blueprint = app.blueprints.get(name)
        if (endpoint != "static" or blueprint is None or not blueprint.has_static_folder
                or rule.subdomain or getattr(rule, "host", None) or not rule.rule.endswith(RULE_TAIL)):
            continue
        url = rule.rule[:-len(RULE_TAIL)]
        if "<" not in url:
            owners.append((url, blueprint))
    folders, seen = [], set()
    with app.app_context():
        for url, owner in owners:
            if url in seen or not url or not os.path.isdir(owner.static_folder):
                continue
            seen.add(url)
            folders.append(_folder(url, owner))
    return folders


def _folder(url: str, owner) -> Folder:
    path = owner.static_folder.rstrip("/")
    failed: list[str | None] = []
    folder = Folder(url, path, _max_age(owner, None, None, failed))
    if _own_max_age(owner):
        for name in _files(Path(path)):
            age = _max_age(owner, name, folder.max_age, failed)
            if age != folder.max_age:
                folder.ages[f"{url}/{name}"] = age
    folder.forever = [f"{url}/{name}" for name in sorted(fingerprinted(Path(path)))]
    return folder


def _max_age(owner, name: str | None, fallback: int | None, failed: list) -> int | None:
    """What the app's (or blueprint's) get_send_file_max_age answers for a
    file (None: its default); a method that fails keeps `fallback`, said
    once per folder (`failed`), as Flask would have failed that request."""
    try:
        return _seconds(owner.get_send_file_max_age(name))
    except Exception as exc:  # the app's own code
        if not failed:
            warn(f"{type(owner).__name__}.get_send_file_max_age({name!r}) raised {type(exc).__name__}: "
                 f"{exc}; nginx sends the folder's files with its usual max age")
        failed.append(name)
        return fallback


def _seconds(value) -> int | None:
    """A max age as Flask reads one: None, seconds, or a timedelta."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return int(value)


def _own_max_age(owner) -> bool:
    """Whether the app or blueprint defines get_send_file_max_age itself
    (Flask's own answers the same for every file)."""
    for klass in type(owner).__mro__:
        if "get_send_file_max_age" in vars(klass):
            return not klass.__module__.startswith("flask.")
    return False


def _files(root: Path):
    """Each file's name below root, as Flask's send_static_file gets it;
    never a dotfile or one in a dot folder, which nginx refuses to serve."""
    count = 0
    for directory, folders, names in os.walk(root):
        folders[:] = [folder for folder in folders if not folder.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            count += 1
            if count > MOST_FILES_ASKED:
                return
            yield (Path(directory) / name).relative_to(root).as_posix()


def app_serves(app, described: dict, folders: list[dict]) -> list[str]:
    """The start's lines for static files the app serves itself, at URLs
    where nginx has no folder on disk (`folders`: nginx's static
    locations, static.folders), so that a user sees nginx does not serve
    them. None for a URL nginx serves from a folder: a file missing there
    reaches the app too, but nginx serves the rest. The Flask app is looked
    for behind the middleware around it (CKAN keeps it as _wsgi_app)."""
    on_disk = [folder["url"] for folder in folders if os.path.isdir(folder["path"])]
    empty = {folder["url"]: folder["path"] for folder in folders if folder["url"] not in on_disk}
    flask = flask_within(app)
    try:
        found = [*_middleware(app, on_disk, empty), *_routes(flask, folders, on_disk),
                 *_sending(flask, on_disk, empty), *_many_folders(flask)]
    except Exception:  # the app's own objects: never a start that fails for a log line
        return []
    lines = []
    for url, who, *why in found:
        if why:
            why = why[0]
        elif url in empty:
            why = f"nginx's folder for it, {empty[url]}, does not exist"
            if described.get("flask") and described.get("static_folder") is None and folders[0]["url"] == url:
                why = f"the app has no static folder (static_folder=None), and {why}"
        else:
            why = "nginx has no static folder at that URL"
        lines.append(f"the static files under {url}/ are the app's to serve, not nginx's: {who}; {why}")
    return lines


def _sending(flask, on_disk: list[str], empty: dict):
    """(URL, who) of the app's routes that send files from a path in their
    URL (CKAN's /webassets/<path:path>, which reads the database too),
    where nginx serves no folder: a rule that ends in a path, whose view
    calls send_file, send_from_directory or send_static_file."""
    if flask is None:
        return
    for rule in flask.url_map.iter_rules():
        view = flask.view_functions.get(rule.endpoint)
        code = getattr(getattr(view, "__wrapped__", view), "__code__", None)
        sends = sorted(SENDERS & set(getattr(code, "co_names", ())))
        head = rule.rule.split("<", 1)[0].rstrip("/")
        if (rule.endpoint.rpartition(".")[2] == "static" or not rule.rule.endswith(">") or not sends
                or "<path:" not in rule.rule or _served(head or "/", on_disk)):
            continue
        yield _within(head, empty), f"the app's route {rule.rule} ({rule.endpoint}) sends them ({sends[0]})"


def _many_folders(flask):
    """(URL, who, why) for a static folder nginx cannot have: several
    folders (CKAN's MultiStaticFlask takes a list), or one at the URL root."""
    if flask is None or not flask.has_static_folder or flask.static_url_path is None:
        return
    url, folder = flask.static_url_path.rstrip("/"), flask.static_folder
    if isinstance(folder, (list, tuple)):
        yield (url, f"{type(flask).__name__}'s send_static_file serves them from {len(folder)} folders",
               "nginx serves one folder at a URL")
    elif not url:
        yield url, f"its static folder, {folder}, is served at the URL root", "nginx keeps none at the root"


def _served(url: str, on_disk: list[str]) -> bool:
    return any(url == served or url.startswith(served + "/") for served in on_disk)


def _within(url: str, empty: dict) -> str:
    """The URL to name: the static location (with no folder) it is under, or itself."""
    return max((where for where in empty if _served(url, [where])), key=len, default=url)


def _middleware(app, on_disk: list[str], empty: dict):
    """(URL, who) of each static-file middleware wrapped around
    app.wsgi_app (app.wsgi_app = WhiteNoise(app.wsgi_app, ...)), for the
    files nginx does not serve from disk."""
    flask = _is_flask(app)
    layer = app.wsgi_app if flask else app
    for _ in range(MIDDLEWARE_DEPTH):
        if layer is None:
            return
        name = f"{type(layer).__name__}, wrapped around {'app.wsgi_app' if flask else 'the app'},"
        files, exports = getattr(layer, "files", None), getattr(layer, "exports", None)
        if isinstance(files, dict) and isinstance(getattr(layer, "directories", None), list):
            yield from _whitenoise(name, files, layer.directories, on_disk, empty)
        elif isinstance(exports, list):  # Werkzeug's SharedDataMiddleware: (URL prefix, loader)
            for prefix, _loader in exports:
                url = "/" + str(prefix).strip("/")
                if not _served(url, on_disk):
                    yield _within(url, empty), f"{name} serves {url}/"
        layer = getattr(layer, "application", None) or getattr(layer, "app", None)


def _whitenoise(name: str, files: dict, directories: list, on_disk: list[str], empty: dict):
    """WhiteNoise's files (URL -> StaticFile, read at its start) or, with
    autorefresh, its folders ((root, prefix), read at each request)."""
    urls, paths = [], []
    for url, static_file in files.items():
        alternatives = getattr(static_file, "alternatives", None)  # a redirect has none
        if alternatives and not _served(url, on_disk):
            urls.append(url)
            paths += [os.path.dirname(alternative[1]) for alternative in alternatives]
    if urls:
        url = _within(posixpath.commonpath([posixpath.dirname(url) for url in urls]).rstrip("/"), empty)
        yield url, f"{name} serves {len(urls)} files there, from {os.path.commonpath(paths)}"
    for root, prefix in directories:
        url = "/" + prefix.strip("/")
        if not _served(url, on_disk):
            yield _within(url, empty), f"{name} serves them from {root}"


def _routes(app, folders: list[dict], on_disk: list[str]):
    """(URL, who) of the app's own routes under its static URL, when
    nginx has no folder there (static_folder=None, or one not on disk)."""
    if not folders or folders[0]["url"] in on_disk or app is None:
        return
    url = folders[0]["url"]
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint.rpartition(".")[2]
        if endpoint != "static" and rule.rule.startswith(url + "/") and not rule.subdomain:
            yield url, f"the app's route {rule.rule} ({rule.endpoint}) answers there"
