"""The settings table's chapter on URLs: the prefix the app is served
under, and the static files nginx serves itself."""

from __future__ import annotations

from ..layout import STATIC_PATH_FALLBACK, STATIC_URL_FALLBACK
from .forms import flag, strip_slash, url_path
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "URL_PREFIX",
        default="",
        form="a URL path such as /shop (empty: the app is at /)",
        parse=url_path,
        doc=("The path the app is served under behind a proxy (`/shop`): `url_for`, redirects and static "
             "URLs start with it; a trusted proxy's `X-Forwarded-Prefix` wins "
             "([production.md](production.md#under-a-url-prefix))."),
        normalize=strip_slash,
        enforced=(
            "pool.wsgi.from_record",
            "request.serve.Serve (as its `url_prefix`: prefix.apply)",
            "start.static.location (nginx's static URL under it)",
            "debug.server.main (debug.DevApp)",
        ),
    ),
    Setting(
        "STATIC_ENABLED",
        default="1",
        form="1 (nginx serves STATIC_URL) or 0 (the app does)",
        parse=flag,
        doc="`1`: nginx serves `STATIC_URL` from disk. `0`: those URLs go to the app.",
        enforced=(
            "start.static.location",
            "pool.wsgi.from_record (the line naming static files the app serves itself)",
        ),
    ),
    Setting(
        "STATIC_URL",
        default="",
        default_doc=f"the Flask app's `static_url_path`, else `{STATIC_URL_FALLBACK}` (computed)",
        form="a URL path below / such as /static",
        parse=url_path,
        doc="URL prefix nginx serves from `STATIC_PATH`.",
        normalize=strip_slash,
        enforced=(
            "start.static.where",
            "start.static.render (the app's own folder's location, and each blueprint's)",
            "nginx-static.conf: location ${STATIC_URL}/",
        ),
    ),
    Setting(
        "STATIC_PATH",
        default="",
        default_doc=f"the Flask app's `static_folder`, else `{STATIC_PATH_FALLBACK}` (computed)",
        form="an absolute directory such as /app/static",
        parse=url_path,
        doc="Folder of static files.",
        normalize=strip_slash,
        enforced=(
            "start.static.where",
            "start.static.render (the app's own folder's location, and each blueprint's)",
            "nginx-static.conf: alias ${STATIC_PATH}/",
            "nginx-static.conf: disable_symlinks",
        ),
    ),
    Setting(
        "STATIC_INDEX",
        default="0",
        form="1 (serve index.html from the static folder at /) or 0",
        parse=flag,
        doc="`1`: `/` is the static folder's `index.html` (tiangolo's image's setting).",
        enforced=(
            "start.static.location",
        ),
    ),
)
