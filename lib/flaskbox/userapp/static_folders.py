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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath

from ..log import warn

# Where bundlers write their manifests, relative to the folder they fill.
MANIFESTS = (".vite/manifest.json", "manifest.json", "asset-manifest.json", "staticfiles.json",
             "assets/manifest.json")
# An app's own get_send_file_max_age is asked about this many files at most
# (a folder of tens of thousands would slow every start); the rest keep the
# folder's age.
MOST_FILES_ASKED = 20000
RULE_TAIL = "/<path:filename>"


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


def fingerprinted(root: Path) -> set[str]:
    """Files below root (relative names) that a bundler's manifest names
    under another name than their source's: content-hashed, never changed
    in place. Only files that are there, and never a dotfile."""
    found: set[str] = set()
    for name in MANIFESTS:
        manifest = root / name
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):  # none, or not JSON (UnicodeDecodeError among them)
            continue
        base = manifest.parent.relative_to(root)
        for source, output in _pairs(data):
            target = _inside(root, base, output)
            if target and _hashed(PurePosixPath(source).stem, PurePosixPath(target).stem):
                found.add(target)
    return found


def _hashed(source: str, output: str) -> bool:
    """Whether an output name is its source's plus a hash: main.ts ->
    main-BXk3dOP1.js (Vite), app.css -> app.55e7cbb9ba48.css (Django),
    spa.js -> spa.4cd1e2bb.entry.js (webpack). A name that stayed as it was,
    or one unlike its source's, is not taken for fingerprinted."""
    return len(output) > len(source) + 1 and output.startswith(source) and output[len(source)] in "-._"


def _pairs(data) -> list[tuple[str, str]]:
    """(source name, output file) of each format's manifest."""
    if not isinstance(data, dict):
        return []
    pairs: list[tuple[str, str]] = []
    # Django's ManifestStaticFilesStorage: {"paths": {source: hashed}, "version": ...}
    # webpack's asset manifests: {source: output}, or {"files": {...}} (create-react-app, Superset).
    flat = data.get("paths") if isinstance(data.get("paths"), dict) else data.get("files", data)
    if isinstance(flat, dict):
        pairs += [(source, output) for source, output in flat.items() if isinstance(output, str)]
    # Vite: {source: {"file": output, "src": source, "css": [...], "assets": [...]}}
    # Anything else in a manifest is not ours to judge: skipped, never a failed start.
    for source, chunk in data.items():
        if isinstance(chunk, dict) and isinstance(chunk.get("file"), str):
            src = chunk.get("src")
            pairs.append((src if isinstance(src, str) and src else source, chunk["file"]))
            for key in ("css", "assets"):
                extras = chunk.get(key)
                if isinstance(extras, list):
                    pairs += [(source, extra) for extra in extras if isinstance(extra, str)]
    return pairs


def _inside(root: Path, base: Path, output: str) -> str | None:
    """A manifest's output as a name relative to root, if it is a file
    there: relative to the manifest, or to root, or a URL that ends in one."""
    output = output.split("?")[0].split("#")[0].lstrip("/")
    if not output or "/." in f"/{output}":
        return None
    parts = PurePosixPath(output).parts
    for start in range(len(parts)):
        tail = PurePosixPath(*parts[start:])
        for candidate in ((base / tail).as_posix(), tail.as_posix()):
            if (root / candidate).is_file() and ".." not in PurePosixPath(candidate).parts:
                return candidate
    return None
