"""Which static files nginx serves and how long browsers may keep them,
decided as Flask would (lib/flaskbox/userapp/static_folders.py, static.py), without
a container: a blueprint's folder at the URL Flask routes to it, the first
of one URL winning; the app's SEND_FILE_MAX_AGE_DEFAULT and its own
get_send_file_max_age; files a bundler's manifest fingerprints (Vite,
webpack, create-react-app, Django), and never a file whose name did not
change; the start's line for static files the app serves itself where
nginx has no folder (WhiteNoise's shape, SharedDataMiddleware, a route),
and none where nginx serves them. tests/test_static_caching.py and
test_revalidation.py prove the same in a container."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta

import pytest
from flask import Blueprint, Flask, send_from_directory
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.middleware.shared_data import SharedDataMiddleware

from fake_host import resolve
from flaskbox.start import manifests, static
from flaskbox.userapp import static_folders
from helpers import REPO


def tree(root, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


@pytest.fixture
def app(tmp_path):
    tree(tmp_path / "static", ["app.css", "assets/spa.4cd1e2bb.entry.js", "assets/main-BXk3dOP1.js"])
    tree(tmp_path / "fab", ["css/bootstrap.css"])
    tree(tmp_path / "admin", ["admin/js/actions.js"])
    app = Flask("shaped_like_superset", root_path=str(tmp_path))
    # Flask-AppBuilder's: under the app's own /static.
    app.register_blueprint(Blueprint("appbuilder", __name__, static_folder=str(tmp_path / "fab"),
                                     static_url_path="/static/appbuilder"))
    # Flask-Admin's: a url_prefix of its own.
    app.register_blueprint(Blueprint("admin", __name__, url_prefix="/admin",
                                     static_folder=str(tmp_path / "admin"), static_url_path="/static/admin"))
    # A second blueprint at the app's own URL: Flask never routes to it.
    app.register_blueprint(Blueprint("shadowed", __name__, static_folder=str(tmp_path / "fab"),
                                     static_url_path="/static"))
    return app


def test_blueprints_are_found_at_the_urls_flask_routes_them_to(app, tmp_path):
    found = {folder.url: folder.path for folder in static_folders.find(app)}
    assert found == {"/static": str(tmp_path / "static"), "/static/appbuilder": str(tmp_path / "fab"),
                     "/admin/static/admin": str(tmp_path / "admin")}
    # As Flask itself routes them.
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/static/appbuilder/css/bootstrap.css")[0] == "appbuilder.static"
    assert adapter.match("/static/app.css")[0] == "static"


def test_the_apps_max_age_is_flasks(app):
    assert static_folders.describe(app)["max_age"] is None  # Flask's default: revalidate
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = timedelta(days=365)
    described = static_folders.describe(app)
    assert described["max_age"] == 31536000
    assert {folder["max_age"] for folder in described["folders"]} == {31536000}


def test_an_apps_own_get_send_file_max_age_is_asked_per_file(tmp_path):
    tree(tmp_path / "static", ["a.js", "b.css", "c.png"])

    class Picky(Flask):
        def get_send_file_max_age(self, filename):
            return 60 if filename and filename.endswith(".js") else 3600

    folder = static_folders.find(Picky("picky", root_path=str(tmp_path)))[0]
    assert folder.max_age == 3600 and folder.ages == {"/static/a.js": 60}


def test_a_failing_get_send_file_max_age_keeps_the_folders_age(tmp_path, capsys):
    tree(tmp_path / "static", ["a.js"])

    class Broken(Flask):
        def get_send_file_max_age(self, filename):
            if filename:
                raise KeyError(filename)
            return 5

    folder = static_folders.find(Broken("broken", root_path=str(tmp_path)))[0]
    assert folder.max_age == 5 and folder.ages == {}
    assert "get_send_file_max_age('a.js') raised KeyError" in capsys.readouterr().err


def test_dotfiles_never_get_a_location_of_their_own(tmp_path):
    # An exact location would win over nginx's refusal of dotfiles and
    # serve .env through the folder's alias.
    tree(tmp_path / "static", ["a.js", ".env", ".vite/manifest.json"])

    class Picky(Flask):
        def get_send_file_max_age(self, filename):
            return 60 if filename else 3600

    described = static_folders.describe(Picky("picky", root_path=str(tmp_path)))
    assert described["folders"][0]["ages"] == {"/static/a.js": 60}
    folder = {"url": "/static", "path": str(tmp_path / "static"), "max_age": 3600,
              "ages": {"/static/.env": 60, "/static/.vite/manifest.json": 60, "/static/a.js": 60},
              "forever": []}
    text = rendered(tmp_path, {"static_folder": folder["path"], "static_url_path": "/static",
                               "folders": [folder], "max_age": 3600})
    assert "location = /static/a.js" in text and "/static/.env" not in text and "/.vite/" not in text


@pytest.mark.parametrize("manifest", [
    {"main.ts": {"file": "main-abc.js", "css": "x.css"}},        # a string where Vite writes a list
    {"main.ts": {"file": "main-abc.js", "src": 7, "assets": {"a": 1}}},
    {"files": ["main.js"]}, [1, 2], "text", {"paths": None},
])
def test_a_manifest_of_another_shape_is_skipped_not_a_failed_start(tmp_path, manifest):
    tree(tmp_path / "static", ["main-abc.js", "x.css"])
    (tmp_path / "static" / "manifest.json").write_text(json.dumps(manifest))
    assert manifests.fingerprinted(tmp_path / "static") <= {"main-abc.js"}
    assert static_folders.describe(Flask("odd", root_path=str(tmp_path)))["folders"][0]["url"] == "/static"


def test_an_app_whose_folders_cannot_be_read_is_served_as_not_flasks(tmp_path, capsys):
    class Odd(Flask):
        @property
        def blueprints(self):
            raise RuntimeError("lazy registry not ready")

        @blueprints.setter
        def blueprints(self, value):
            pass

    tree(tmp_path / "static", ["a.js"])
    assert static_folders.describe(Odd("odd", root_path=str(tmp_path))) == {"folders": [], "max_age": None}
    assert "could not read the app's static folders (RuntimeError: lazy registry not ready)" in \
        capsys.readouterr().err


MANIFESTS = {
    # Vite 5: .vite/manifest.json, its entries' files and CSS; an asset of its own.
    ".vite/manifest.json": {"index.html": {"file": "assets/index-Cu7Ts1Kq.js", "src": "index.html",
                                           "css": ["assets/index-DiwrgTda.css", "assets/theme.css"]},
                            "src/logo.svg": {"file": "assets/logo-Dk2qR1xY.svg", "src": "src/logo.svg"},
                            "src/plain.js": {"file": "assets/plain.js", "src": "src/plain.js"}},
    # webpack-manifest-plugin, as Superset writes it (URLs under /static).
    "dist/manifest.json": {"files": {"spa.js": "/static/dist/spa.4cd1e2bb.entry.js",
                                     "favicon.ico": "/static/dist/favicon.ico"}},
    # create-react-app's asset-manifest.json.
    "build/asset-manifest.json": {"files": {"main.js": "/static/build/js/main.8a7c3e2d.js",
                                            "static/media/logo.svg": "/static/build/media/logo.6ce24c58.svg"},
                                  "entrypoints": ["js/main.8a7c3e2d.js"]},
    # Django's ManifestStaticFilesStorage.
    "staticfiles.json": {"paths": {"css/site.css": "css/site.55e7cbb9ba48.css"}, "version": "1.1"},
}


def test_a_bundlers_manifest_says_which_files_never_change(tmp_path):
    files = ["assets/index-Cu7Ts1Kq.js", "assets/index-DiwrgTda.css", "assets/theme.css",
             "assets/logo-Dk2qR1xY.svg", "assets/plain.js", "dist/spa.4cd1e2bb.entry.js", "dist/favicon.ico",
             "build/js/main.8a7c3e2d.js", "build/media/logo.6ce24c58.svg", "css/site.55e7cbb9ba48.css"]
    tree(tmp_path, files)
    for name, data in MANIFESTS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(data))
    # The manifests in each bundler's place: the folder, and dist/ and build/ below it.
    found = manifests.fingerprinted(tmp_path) | {
        f"{sub}/{name}" for sub in ("dist", "build") for name in manifests.fingerprinted(tmp_path / sub)}
    assert found == {"assets/index-Cu7Ts1Kq.js", "assets/index-DiwrgTda.css", "assets/logo-Dk2qR1xY.svg",
                     "dist/spa.4cd1e2bb.entry.js", "build/js/main.8a7c3e2d.js",
                     "build/media/logo.6ce24c58.svg",
                     "css/site.55e7cbb9ba48.css"}
    # Names that did not change (theme.css, plain.js, favicon.ico) may change between deploys.


def rendered(tmp_path, app_description, env=None) -> str:
    record = resolve({"RUNTIME_DIR": str(tmp_path / "run"), **(env or {})}).record()
    return static.location(record, app_description, REPO)


def test_nginx_gets_a_location_per_folder_with_the_apps_caching(app, tmp_path):
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 3600
    manifest = {"files": {"main.js": "assets/main-BXk3dOP1.js"}}
    (tmp_path / "static" / "manifest.json").write_text(json.dumps(manifest))
    text = rendered(tmp_path, {"static_folder": app.static_folder, "static_url_path": "/static",
                               **static_folders.describe(app)})
    for url, path in (("/static", tmp_path / "static"), ("/static/appbuilder", tmp_path / "fab"),
                      ("/admin/static/admin", tmp_path / "admin")):
        assert f"location {url}/ {{\n    alias {path}/;" in text
    assert text.count("expires 3600s;") == 3
    assert "location = /static/assets/main-BXk3dOP1.js {\n        if ($flaskbox_body) {\n" in text
    assert "        set $flaskbox_handler static;\n        expires max;\n    }" in text
    # A missing file is the app's to answer, without an error line.
    assert text.count("log_not_found off;") == 3
    # A request with a body is the app's in every location that could pass
    # it on (a nested one runs none of its parent's `if`s), in the body
    # slots: all but the dotfiles' refusal, which reads no body.
    blocks = re.split(r"^ *location ", text, flags=re.M)[1:]
    asking = [block for block in blocks if not block.startswith("~ /\\.")]
    assert len(asking) == 3 * 2 + 1, blocks  # each folder and its fingerprints; the manifest's file
    assert all(block.count("if ($flaskbox_body) {\n") == 1 for block in asking), asking


def test_without_the_app_s_word_files_are_revalidated(tmp_path):
    tree(tmp_path / "public", ["a.css"])
    text = rendered(tmp_path, None, {"STATIC_URL": "/assets", "STATIC_PATH": str(tmp_path / "public")})
    assert "location /assets/ {" in text and "expires epoch;" in text and "location = " not in text


# --- static files the app serves itself (the start's line) --------------------

class WhiteNoiseShaped:
    """What static_folders reads of a WhiteNoise (tests/apps/searx-like
    has the real one): `files`, URL -> a file with its `alternatives`
    (pattern, path on disk, headers); `directories` with autorefresh."""

    def __init__(self, application, root, prefix):
        self.application, self.directories = application, []
        self.files = {f"{prefix}{path.relative_to(root).as_posix()}": StaticFile(path)
                      for path in root.rglob("*") if path.is_file()}


class StaticFile:
    def __init__(self, path):
        self.alternatives = [(re.compile(""), str(path), [])]


def said(tmp_path, app, env=None) -> list[str]:
    """The start's lines for `app`, nginx's folders decided as the arbiter does."""
    record = resolve({"RUNTIME_DIR": str(tmp_path / "run"), **(env or {})}).record()
    described = {"flask": True, "static_folder": app.static_folder if app.has_static_folder else None,
                 "static_url_path": app.static_url_path if app.has_static_folder else None,
                 **static_folders.describe(app)}
    return static_folders.app_serves(app, described, static.folders(record, described))


def searx_like(tmp_path) -> Flask:
    tree(tmp_path / "searx" / "static", ["themes/simple/css/searxng.min.css",
                                         "themes/simple/js/searxng.min.js"])
    app = Flask("searx_like", root_path=str(tmp_path / "searx"), static_folder=None)
    app.wsgi_app = WhiteNoiseShaped(app.wsgi_app, tmp_path / "searx" / "static", "/static/")
    return app


def test_whitenoise_around_an_app_without_a_static_folder_is_named(tmp_path):
    app = searx_like(tmp_path)
    env = {"STATIC_URL": "/static", "STATIC_PATH": str(tmp_path / "static")}  # not there, as /app/static
    assert said(tmp_path, app, env) == [
        "the static files under /static/ are the app's to serve, not nginx's: WhiteNoiseShaped, wrapped "
        f"around app.wsgi_app, serves 2 files there, from {tmp_path}/searx/static/themes/simple; the app "
        f"has no static folder (static_folder=None), and nginx's folder for it, {tmp_path}/static, does "
        "not exist"]
    # Behind another middleware (ProxyFix) too.
    app.wsgi_app = ProxyFix(app.wsgi_app)
    assert len(said(tmp_path, app, env)) == 1


def test_no_line_where_nginx_serves_the_folder(tmp_path):
    app = searx_like(tmp_path)
    # STATIC_PATH names WhiteNoise's folder: nginx serves it.
    served = {"STATIC_URL": "/static", "STATIC_PATH": str(tmp_path / "searx" / "static")}
    assert said(tmp_path, app, served) == []
    # A Flask app with its folder on disk, a Flask app with no static files
    # at all (its default folder not there), an app behind ProxyFix alone.
    tree(tmp_path / "plain" / "static", ["app.css"])
    for root in ("plain", "empty"):
        plain = Flask(f"plain_{root}", root_path=str(tmp_path / root))
        plain.wsgi_app = ProxyFix(plain.wsgi_app)
        assert said(tmp_path, plain) == []


def test_shared_data_middleware_and_an_own_route_are_named(tmp_path):
    tree(tmp_path / "files", ["a.txt"])
    app = Flask("own_route", root_path=str(tmp_path), static_folder=None)
    app.add_url_rule("/static/<path:name>", "assets", lambda name: name)
    app.wsgi_app = SharedDataMiddleware(app.wsgi_app, {"/files": str(tmp_path / "files")})
    lines = said(tmp_path, app, {"STATIC_URL": "/static", "STATIC_PATH": str(tmp_path / "static")})
    assert lines == [
        "the static files under /files/ are the app's to serve, not nginx's: SharedDataMiddleware, wrapped "
        "around app.wsgi_app, serves /files/; nginx has no static folder at that URL",
        "the static files under /static/ are the app's to serve, not nginx's: the app's route "
        "/static/<path:name> (assets) answers there; the app has no static folder (static_folder=None), "
        f"and nginx's folder for it, {tmp_path}/static, does not exist"]


class MultiStatic(Flask):
    """CKAN's MultiStaticFlask's shape: a list of static folders, each
    below the app's root, looked through in turn."""

    @property
    def static_folder(self):
        folders = getattr(self, "_folders", None)
        return None if folders is None else [os.path.join(self.root_path, folder) for folder in folders]

    @static_folder.setter
    def static_folder(self, value):
        self._folders = [value] if isinstance(value, str) else value

    def send_static_file(self, filename):
        return filename


class Outer:
    """CKAN's middlewares around its Flask app, which keep it as _wsgi_app."""

    def __init__(self, app):
        self.app = self._wsgi_app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def test_a_route_that_sends_files_and_folders_nginx_cannot_have_are_named_behind_middleware(tmp_path):
    # CKAN: its bundles from a route of its own (which reads the database),
    # its public folders through a list of folders at the URL root.
    tree(tmp_path / "public", ["base/main.css"])
    tree(tmp_path / "webassets", ["base/main.1a2b.css"])
    app = MultiStatic("ckan_like", root_path=str(tmp_path), static_url_path="")
    app.static_folder = [str(tmp_path / "public"), str(tmp_path / "storage")]

    def webassets(path):
        return send_from_directory(tmp_path / "webassets", path)

    app.add_url_rule("/webassets/<path:path>", "webassets.index", webassets)
    app.add_url_rule("/dataset/<path:name>", "dataset.read", lambda name: name)  # sends no file
    outer = Outer(Outer(app))
    record = resolve({"RUNTIME_DIR": str(tmp_path / "run")}).record()
    described = {"flask": False, **static_folders.describe(outer)}
    assert static_folders.app_serves(outer, described, static.folders(record, described)) == [
        "the static files under /webassets/ are the app's to serve, not nginx's: the app's route "
        "/webassets/<path:path> (webassets.index) sends them (send_from_directory); nginx has no static "
        "folder at that URL",
        "the static files under / are the app's to serve, not nginx's: MultiStatic's send_static_file serves "
        "them from 2 folders; nginx serves one folder at a URL"]
