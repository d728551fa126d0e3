"""nginx's location for static files, rendered from the record by one
function whatever triggers it: at start (render.py), before the app is
loaded, and by the arbiter once a generation's loaded app has said where
its static folder is (wsgi.py writes it; arbiter/nginx.py installs the
location, judged with `nginx -t`).

STATIC_URL and STATIC_PATH win where set; else the Flask app's own static
folder and URL; else STATIC_URL_FALLBACK from STATIC_PATH_FALLBACK."""

from __future__ import annotations

import re
from pathlib import Path

from .layout import STATIC_PATH_FALLBACK, STATIC_URL_FALLBACK
from .record import Record
from .template import CONF_DIR, fill

# A path nginx can take as it is: no spaces, quotes or `$` (a variable there).
PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~+@-]+)+")


def where(record: Record, app: dict | None) -> tuple[str, str] | None:
    """(URL, folder) to serve; None while the app, which decides, is not
    loaded yet."""
    url, path = record["STATIC_URL"], record["STATIC_PATH"]
    if url and path:
        return url, path
    if app is None:
        return None
    if app.get("static_folder") and app.get("static_url_path"):
        url = url or app["static_url_path"].rstrip("/")
        path = path or app["static_folder"].rstrip("/")
    return url or STATIC_URL_FALLBACK, path or STATIC_PATH_FALLBACK


def location(record: Record, app: dict | None, conf_dir: Path = CONF_DIR) -> str:
    """static.conf's text. `app` is what the loaded app said of itself
    (None: not loaded yet)."""
    if not record["STATIC_ENABLED"]:
        return "# STATIC_ENABLED=0: static URLs go to the app.\n"
    found = where(record, app)
    if found is None:
        return "# The static location follows once the app is loaded (flaskbox/wsgi.py).\n"
    url, path = found
    if not (PLAIN_PATH.fullmatch(url) and PLAIN_PATH.fullmatch(path) and len(url) > 1):
        return (f"# The app's static folder ({path} at {url}) is not a plain path for nginx:"
                " the app serves it.\n")
    template = (conf_dir / "nginx-static.conf").read_text()
    values = {**record.text, **record.derived, "STATIC_URL": url, "STATIC_PATH": path}
    text = fill(template, values, "nginx-static.conf")
    prefix = record["URL_PREFIX"]
    if prefix:
        # url_for gives URL_PREFIX + url: a proxy that passes the path whole
        # sends that, which nginx serves from disk too.
        text += (f"\n# URL_PREFIX={prefix}: the same files under it.\n"
                 + fill(template, {**values, "STATIC_URL": prefix + url}, "nginx-static.conf"))
    if record["STATIC_INDEX"]:
        text += ("\n# STATIC_INDEX=1: / is the static folder's index.html.\n"
                 f"location = / {{\n    rewrite ^ {url}/index.html last;\n}}\n")
    return text
