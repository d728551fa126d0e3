"""CKAN's shape (issue 79; bench --apps): a dataset page reads a SQLite
file made at import (a few thousand datasets with their resources, tags
and extras), as CKAN's model does: several queries a page and one for each
listed dataset's tags (an ORM's lazy loading), in C, partly outside
Python's lock; the rows turned into dicts and run through a validation
schema as CKAN's package_show does (its navl schemas: flattened keys, a
list of validators a field); then a large Jinja template with macros.
Some 30-60 ms a page. Each process first builds its web assets
(webassets' bundles: some 3 s of Python)."""

from __future__ import annotations

import datetime
import hashlib
import os
import random
import re
import sqlite3
import tempfile
import threading

from per_process import SETUP_SCALE, PerProcess, calibrated

ASSETS_CPU = 3.0 * SETUP_SCALE
DATASETS, ORGANIZATIONS, TAGS = 3000, 10, 200
FORMATS = ("CSV", "JSON", "XLSX", "PDF", "GeoJSON")
RELATED = 300  # the organization's other datasets a page lists
DATABASE = os.path.join(tempfile.gettempdir(), "bench-ckan.db")


def make_database() -> None:
    """The catalogue, the same in every process (a fixed seed): written to
    a file of this process's own, then moved into place, so that processes
    importing at once each leave it whole."""
    draw = random.Random(79)
    words = ("water", "census", "budget", "transport", "air", "quality", "schools", "health", "roads",
             "energy", "parcels", "permits", "crime", "weather", "trees", "bus", "rail", "housing")
    mine = f"{DATABASE}.{os.getpid()}"
    db = sqlite3.connect(mine)
    db.executescript("""
        DROP TABLE IF EXISTS organization; DROP TABLE IF EXISTS package; DROP TABLE IF EXISTS resource;
        DROP TABLE IF EXISTS tag; DROP TABLE IF EXISTS package_tag; DROP TABLE IF EXISTS package_extra;
        CREATE TABLE organization (id INTEGER PRIMARY KEY, name TEXT, title TEXT, description TEXT);
        CREATE TABLE package (id INTEGER PRIMARY KEY, name TEXT UNIQUE, title TEXT, notes TEXT,
            owner_org INTEGER, license_id TEXT, metadata_modified TEXT, private INTEGER);
        CREATE INDEX package_org ON package (owner_org, metadata_modified);
        CREATE TABLE resource (id INTEGER PRIMARY KEY, package_id INTEGER, position INTEGER, name TEXT,
            format TEXT, url TEXT, size INTEGER, description TEXT);
        CREATE INDEX resource_package ON resource (package_id, position);
        CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE package_tag (package_id INTEGER, tag_id INTEGER);
        CREATE INDEX package_tag_package ON package_tag (package_id);
        CREATE INDEX package_tag_tag ON package_tag (tag_id);
        CREATE TABLE package_extra (package_id INTEGER, key TEXT, value TEXT);
        CREATE INDEX package_extra_package ON package_extra (package_id);
    """)
    db.executemany("INSERT INTO organization VALUES (?, ?, ?, ?)",
                   [(n, f"org-{n}", f"Department of {words[n % len(words)].title()} {n}",
                     " ".join(draw.choice(words) for _ in range(30))) for n in range(ORGANIZATIONS)])
    db.executemany("INSERT INTO tag VALUES (?, ?)",
                   [(n, f"{words[n % len(words)]}-{n}") for n in range(TAGS)])
    db.executemany("INSERT INTO package VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [(n, f"dataset-{n}", " ".join(draw.choice(words) for _ in range(5)).title(),
                     " ".join(draw.choice(words) for _ in range(60)), draw.randrange(ORGANIZATIONS),
                     draw.choice(("cc-by", "odc-odbl", "cc-zero", "other-open")),
                     f"2025-{draw.randrange(1, 13):02d}-{draw.randrange(1, 29):02d}T10:00:00", 0)
                    for n in range(DATASETS)])
    db.executemany("INSERT INTO resource VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
                   [(n, p, f"{draw.choice(words)} {p}", draw.choice(FORMATS),
                     f"https://data.example/dataset-{n}/resource-{p}", draw.randrange(1000, 10**8),
                     " ".join(draw.choice(words) for _ in range(25)))
                    for n in range(DATASETS) for p in range(draw.randrange(3, 10))])
    db.executemany("INSERT INTO package_tag VALUES (?, ?)",
                   [(n, t) for n in range(DATASETS) for t in draw.sample(range(TAGS), 5)])
    db.executemany("INSERT INTO package_extra VALUES (?, ?, ?)",
                   [(n, key, f"{key} of dataset {n}") for n in range(DATASETS)
                    for key in ("spatial", "frequency", "contact", "source", "language", "version")])
    db.commit()
    db.close()
    os.replace(mine, DATABASE)


make_database()
_connections = threading.local()


def connection() -> sqlite3.Connection:
    """This thread's connection (an ORM's pool: one a thread, opened after
    the fork, read-only)."""
    if getattr(_connections, "pid", None) != os.getpid():
        _connections.db = sqlite3.connect(f"file:{DATABASE}?mode=ro", uri=True)
        _connections.pid = os.getpid()
    return _connections.db


def query(sql: str, *args) -> list[dict]:
    """An ORM's read: each row a dict of its columns."""
    cursor = connection().execute(sql, args)
    columns = tuple(d[0] for d in cursor.description)
    return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


# --- CKAN's navl validation, small: a dict flattened to tuple keys, each
# field's validators run in turn, the dict made again. ---------------------------------------------------
NAME = re.compile(r"^[a-z0-9_\-]{2,100}$")


def not_empty(key, data, errors):
    if data.get(key) in (None, ""):
        errors[key].append("Missing value")


def unicode_safe(key, data, errors):
    data[key] = "" if data.get(key) is None else str(data[key])


def strip_value(key, data, errors):
    data[key] = data[key].strip()


def name_validator(key, data, errors):
    if not NAME.match(data[key]):
        errors[key].append("Must be purely lowercase alphanumeric (ascii) characters and these symbols: -_")


def isodate(key, data, errors):
    data[key] = datetime.datetime.fromisoformat(data[key]).isoformat()


def natural_number(key, data, errors):
    data[key] = int(data[key])
    if data[key] < 0:
        errors[key].append("Must be a natural number")


def url_validator(key, data, errors):
    scheme, _, rest = str(data[key]).partition("://")
    if scheme not in ("http", "https", "ftp") or "." not in rest.split("/")[0]:
        errors[key].append("Please provide a valid URL")


def boolean(key, data, errors):
    data[key] = data[key] in (1, True, "true", "True", "1")


TEXT = [unicode_safe, strip_value]
SCHEMA = {"id": [not_empty, natural_number], "name": [not_empty, unicode_safe, name_validator], "title": TEXT,
          "notes": TEXT, "owner_org": [natural_number], "license_id": [not_empty, *TEXT],
          "metadata_modified": [isodate], "private": [boolean], "org_name": [name_validator],
          "org_title": TEXT, "org_description": TEXT, "resources": {
              "id": [natural_number], "package_id": [natural_number], "position": [natural_number],
              "name": TEXT, "format": [*TEXT], "url": [not_empty, url_validator], "size": [natural_number],
              "description": TEXT},
          "tags": {"name": [not_empty, unicode_safe, name_validator]}, "extras": {"key": [not_empty, *TEXT],
                                                                                 "value": TEXT},
          "resources_count": [natural_number], "formats": TEXT}


def flatten(data: dict, prefix: tuple = ()) -> dict:
    flat = {}
    for name, value in data.items():
        if isinstance(value, list):
            for index, item in enumerate(value):
                flat.update(flatten(item, (*prefix, name, index)))
        else:
            flat[(*prefix, name)] = value
    return flat


def unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, value in sorted(flat.items(), key=lambda item: [str(part) for part in item[0]]):
        node = out
        for part, after in zip(key[:-1], key[1:], strict=False):
            if isinstance(part, int):
                continue
            node = node.setdefault(part, [])
            if isinstance(after, int):
                while len(node) <= after:
                    node.append({})
                node = node[after]
        node[key[-1]] = value
    return out


def validate(data: dict) -> tuple[dict, dict]:
    """The dict as package_show's schema leaves it, and its errors."""
    flat = flatten(data)
    errors = {key: [] for key in flat}
    for key in flat:
        validators = SCHEMA
        for part in key:
            if not isinstance(part, int):
                validators = validators.get(part, [])
        for validator in validators:
            validator(key, flat, errors)
    return unflatten(flat), {key: found for key, found in errors.items() if found}


def tags_of(package_id: int) -> list[dict]:
    return query("SELECT t.name FROM tag t JOIN package_tag pt ON pt.tag_id = t.id "
                 "WHERE pt.package_id = ? ORDER BY t.name", package_id)


def dataset(number: int) -> dict | None:
    """What CKAN's package_show and the page around it read and check."""
    found = query("SELECT p.*, o.name AS org_name, o.title AS org_title, o.description AS org_description "
                  "FROM package p JOIN organization o ON o.id = p.owner_org WHERE p.name = ?",
                  f"dataset-{number % DATASETS}")
    if not found:
        return None
    package = found[0]
    package["resources"] = query("SELECT * FROM resource WHERE package_id = ? ORDER BY position",
                                 package["id"])
    package["tags"] = tags_of(package["id"])
    package["extras"] = query("SELECT key, value FROM package_extra WHERE package_id = ? ORDER BY key",
                              package["id"])
    related = query("SELECT p.id, p.name, p.title, p.notes, p.license_id, p.metadata_modified, "
                    "COUNT(r.id) AS resources_count, GROUP_CONCAT(DISTINCT r.format) AS formats "
                    "FROM package p LEFT JOIN resource r ON r.package_id = p.id WHERE p.owner_org = ? "
                    "GROUP BY p.id ORDER BY p.metadata_modified DESC, p.id LIMIT ?",
                    package["owner_org"], RELATED)
    for item in related:
        item["tags"] = tags_of(item["id"])
    return {
        "package": validate(package)[0],
        "related": [validate(item)[0] for item in related],
        "facets": query("SELECT t.name, COUNT(*) AS count FROM package_tag pt JOIN tag t ON t.id = pt.tag_id "
                        "JOIN package p ON p.id = pt.package_id WHERE p.owner_org = ? GROUP BY t.id "
                        "ORDER BY count DESC, t.name LIMIT 50", package["owner_org"]),
        "formats": query("SELECT r.format AS name, COUNT(*) AS count FROM resource r JOIN package p "
                         "ON p.id = r.package_id WHERE p.owner_org = ? GROUP BY r.format ORDER BY count DESC",
                         package["owner_org"]),
        "activity": query("SELECT name, title, metadata_modified FROM package "
                          "ORDER BY metadata_modified DESC, id LIMIT 100"),
    }


def _assets(passes: int) -> dict:
    """Web assets' bundles: each source minified and fingerprinted,
    `passes` times over (the last pass's URLs kept)."""
    bundles: dict = {}
    for number in range(passes):
        for index in range(40):
            source = "\n".join(f"  var module{index}_{line} = function (a, b) {{ return a + b * {line}; }};  "
                               for line in range(40))
            minified = ";".join(part.strip().replace(" ", "") for part in source.split("\n") if part.strip())
            fingerprint = hashlib.md5(minified.encode()).hexdigest()[:8]
            bundles[f"bundle-{index}.js"] = f"/webassets/{fingerprint}-{number % 2}.js"
    return bundles


ASSETS_PASSES = calibrated(_assets, 50, ASSETS_CPU, "ASSETS_PASSES")
ASSETS = PerProcess(lambda: _assets(ASSETS_PASSES))

