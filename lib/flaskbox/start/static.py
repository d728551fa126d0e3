"""nginx's locations for static files, rendered from the record by one
function whatever triggers it: at start (render.py), before the app is
loaded, and by the arbiter once a generation's loaded app has said where
its static folders are and how long Flask would let a browser keep each
file (static_folders.py; wsgi.py writes it; arbiter/nginx.py installs the
locations, judged with `nginx -t`).

The app's own folder: STATIC_URL and STATIC_PATH win where set; else the
Flask app's own static folder and URL; else STATIC_URL_FALLBACK from
STATIC_PATH_FALLBACK. Then each blueprint's own folder at its URL (nginx's
longest prefix picks among them as Flask's routing does)."""

from __future__ import annotations

import re
from pathlib import Path

from ..layout import STATIC_PATH_FALLBACK, STATIC_URL_FALLBACK
from ..record import Record
from .manifests import fingerprinted
from .template import CONF_DIR, fill

# A path nginx can take as it is: no spaces, quotes or `$` (a variable there).
PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~+@-]+)+")


def where(record: Record, app: dict | None) -> tuple[str, str] | None:
    """(URL, folder) of the app's own static files; None while the app,
    which decides, is not loaded yet."""
    url, path = record["STATIC_URL"], record["STATIC_PATH"]
    if url and path:
        return url, path
    if app is None:
        return None
    if app.get("static_folder") and app.get("static_url_path"):
        url = url or app["static_url_path"].rstrip("/")
        path = path or app["static_folder"].rstrip("/")
    return url or STATIC_URL_FALLBACK, path or STATIC_PATH_FALLBACK


def folders(record: Record, app: dict | None) -> list[dict] | None:
    """Each folder to serve, the app's own first: its URL, its path, the max
    age of its files (None: revalidate), files of another age, and files to
    keep for good. None while the app is not loaded (and STATIC_URL and
    STATIC_PATH do not both say)."""
    own = where(record, app)
    if own is None:
        return None
    known = {folder["url"]: folder for folder in (app or {}).get("folders", [])}
    url, path = own
    found = known.pop(url, None)
    if found is None or found["path"] != path:
        # Not the folder the app described (STATIC_PATH moved it, or a
        # plain WSGI app): its manifests still say what never changes.
        age = app.get("max_age") if app else None
        found = {"url": url, "path": path, "max_age": age, "ages": {},
                 "forever": [f"{url}/{name}" for name in sorted(fingerprinted(Path(path)))]}
    return [found, *known.values()]


def location(record: Record, app: dict | None, conf_dir: Path = CONF_DIR) -> str:
    """static.conf's text. `app` is what the loaded app said of itself
    (None: not loaded yet)."""
    if not record["STATIC_ENABLED"]:
        return "# STATIC_ENABLED=0: static URLs go to the app.\n"
    served = folders(record, app)
    if served is None:
        return "# The static location follows once the app is loaded (flaskbox/pool/wsgi.py).\n"
    template = (conf_dir / "nginx-static.conf").read_text()
    texts, prefix = [], record["URL_PREFIX"]
    for folder in served:
        url, path = folder["url"], folder["path"]
        if not (PLAIN_PATH.fullmatch(url) and PLAIN_PATH.fullmatch(path) and len(url) > 1):
            texts.append(f"# A static folder ({path} at {url}) is not a plain path for nginx:"
                         " the app serves it.\n")
            continue
        texts.append(render(template, record, folder, url))
        if prefix:
            # url_for gives URL_PREFIX + url: a proxy that passes the path
            # whole sends that, which nginx serves from disk too.
            texts.append(f"\n# URL_PREFIX={prefix}: the same files under it.\n"
                         + render(template, record, folder, prefix + url, prefix))
    text = "\n".join(texts)
    if record["STATIC_INDEX"]:
        url = served[0]["url"]
        text += ("\n# STATIC_INDEX=1: / is the static folder's index.html.\n"
                 f"location = / {{\n    rewrite ^ {url}/index.html last;\n}}\n")
    return text


def render(template: str, record: Record, folder: dict, url: str, prefix: str = "") -> str:
    """One folder's location at `url`."""
    values = {**record.text, **record.derived, "STATIC_URL": url, "STATIC_PATH": folder["path"],
              "STATIC_EXPIRES": expires(folder["max_age"]), "STATIC_FILES": files(folder, prefix)}
    return fill(template, values, "nginx-static.conf")


def expires(max_age: int | None) -> str:
    """nginx's `expires` for a max age as Flask sends it: none (or 0) is
    Cache-Control: no-cache, so that the browser revalidates each time."""
    return f"{max_age}s" if max_age else "epoch"


def files(folder: dict, prefix: str) -> str:
    """Exact locations for the files a manifest fingerprints (kept for good)
    and those the app gives an age of their own (get_send_file_max_age)."""
    ages = {**folder["ages"], **dict.fromkeys(folder["forever"], "max")}
    lines = []
    for file_url, age in sorted(ages.items()):
        if not PLAIN_PATH.fullmatch(file_url) or "/." in file_url:
            # The folder's own age, then: never longer than the app asked;
            # and an exact location would serve a dotfile past nginx's refusal.
            continue
        value = age if age == "max" else expires(age)
        # A body is the app's here too (nginx-static.conf says why).
        lines.append(f"    location = {prefix}{file_url} {{\n"
                     "        if ($flaskbox_body) {\n            return 418;\n        }\n"
                     f"        set $flaskbox_handler static;\n        expires {value};\n    }}\n")
    return "".join(lines) or "    # (none)\n"
