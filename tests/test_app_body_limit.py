"""The app's own body limit, in a container: an app that says Flask's
MAX_CONTENT_LENGTH (Dify's 15 MB) gets its uploads past the image's default
10m, and nginx refuses what the app would (413, its log line naming
MAX_CONTENT_LENGTH); a MAX_BODY_SIZE the user sets wins, and the start
says so; an app with no limit keeps the default; a reload's new limit
applies. The rule in process: test_body_limit.py."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
import requests

from helpers import share_with_container

MIB = 1 << 20

APP = """\
import hashlib

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index():
    return "uploads"


@app.post("/upload")
def upload():
    data = request.get_data()
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.errorhandler(413)
def too_large(error):
    # Told apart from nginx's 413: a body past the limit the app refuses itself.
    return "the app's own 413\\n", 413
"""
# As Dify says its 15 MB, the Flask way.
LIMITED = "from app import app\n\napp.config['MAX_CONTENT_LENGTH'] = 15 * 1024 * 1024\n"
# Its limit read at import from a file beside it, which a test changes before a reload.
FROM_FILE = ("from pathlib import Path\n\nfrom app import app\n\n"
             "app.config['MAX_CONTENT_LENGTH'] = int((Path(__file__).parent / 'limit').read_text())\n")


def app_dir(root, limit: int = 15 * MIB):
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "limited.py").write_text(LIMITED)
    (root / "from_file.py").write_text(FROM_FILE)
    (root / "limit").write_text(f"{limit}\n")
    share_with_container(root)
    return root


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    return app_dir(tmp_path_factory.mktemp("app-body-limit") / "app")


def upload(container, size: int, tag: str) -> requests.Response:
    """A raw body of `size` random bytes to /upload?<tag> (the tag finds its log line)."""
    return requests.post(f"http://127.0.0.1:{container.port}/upload?{tag}", data=os.urandom(size), timeout=60,
                         headers={"Content-Type": "application/octet-stream"})


def reaches_the_app(container, size: int) -> None:
    data = os.urandom(size)
    resp = requests.post(f"http://127.0.0.1:{container.port}/upload", data=data, timeout=60,
                         headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200, (resp.status_code, container.logs()[-3000:])
    assert resp.json() == {"length": size, "sha256": hashlib.sha256(data).hexdigest()}


def refused_by_nginx(container, size: int, tag: str, source: str) -> None:
    """413 from nginx, not the app: not its own page, and the access line
    names where the limit came from."""
    resp = upload(container, size, tag)
    assert resp.status_code == 413 and "the app's own 413" not in resp.text, (resp.status_code, resp.text)
    container.wait_until(lambda: re.search(rf'"POST /upload\?{tag} HTTP/1.1" 413 .* limit={source}$',
                                           container.logs(), re.MULTILINE), f"the 413's line naming {source}")


def test_the_apps_max_content_length_is_nginxs_limit(containers, apps):
    c = containers.serving(env={"APP_MODULE": "limited:app", "UPLOAD_SPACE": "128m"},
                           docker_args=("-v", f"{apps}:/app:ro"))
    # Past the default 10m, within the app's 15 MiB: the app's byte count and hash.
    reaches_the_app(c, 12 * MIB)
    # Past the app's: nginx's 413 before the body is stored (Flask would
    # refuse it too; nginx saves the disk and the upload slot).
    refused_by_nginx(c, 16 * MIB, "past-the-apps", "MAX_CONTENT_LENGTH")
    logs = c.logs()
    assert (f"bodies up to the app's MAX_CONTENT_LENGTH ({15 * MIB} bytes; larger: 413, logged with "
            "limit=MAX_CONTENT_LENGTH); 8 uploads at once at most: UPLOAD_SPACE (128m, as set) over the "
            "limit") in logs, logs
    assert "is above MAX_BODY_SIZE" not in logs, logs


def test_max_body_size_set_wins_over_the_apps_limit_and_the_start_says_so(containers, apps):
    c = containers.serving(env={"APP_MODULE": "limited:app", "MAX_BODY_SIZE": "11m"},
                           docker_args=("-v", f"{apps}:/app:ro"))
    # Within the app's 15 MiB, past the 11m set (and its form allowance).
    refused_by_nginx(c, 12 * MIB, "past-the-setting", "MAX_BODY_SIZE")
    reaches_the_app(c, 11 * MIB)
    logs = c.logs()
    assert ("bodies up to MAX_BODY_SIZE (11m, as set; larger: 413, logged with "
            "limit=MAX_BODY_SIZE)") in logs, logs
    assert (f"the app's MAX_CONTENT_LENGTH ({15 * MIB} bytes) is above MAX_BODY_SIZE (11m, as set): nginx "
            "answers 413 to the bodies between them") in logs, logs


def test_an_app_without_a_limit_keeps_the_default(containers, apps):
    c = containers.serving(env={"APP_MODULE": "app:app"}, docker_args=("-v", f"{apps}:/app:ro"))
    reaches_the_app(c, 10 * MIB)
    refused_by_nginx(c, 11 * MIB, "past-the-default", "MAX_BODY_SIZE")
    assert ("bodies up to MAX_BODY_SIZE (10m, the image's default; larger: 413, logged with "
            "limit=MAX_BODY_SIZE)") in c.logs()


def test_a_reload_applies_the_new_codes_limit(containers, tmp_path):
    apps = app_dir(tmp_path / "app", limit=15 * MIB)
    c = containers.serving(env={"APP_MODULE": "from_file:app"}, docker_args=("-v", f"{apps}:/app:ro"))
    refused_by_nginx(c, 20 * MIB, "before-the-reload", "MAX_CONTENT_LENGTH")
    (apps / "limit").write_text(f"{25 * MIB}\n")
    c.signal("HUP", "1")
    c.wait_until(lambda: "SIGHUP: nginx reloads its configuration, which changed" in c.logs(),
                 "nginx reloaded with the new code's limit")
    assert (f"SIGHUP: bodies up to the app's MAX_CONTENT_LENGTH ({25 * MIB} bytes; larger: 413"
            in c.logs()), c.logs()
    # nginx's old workers may still take a new connection for a moment.
    c.wait_until(lambda: upload(c, 20 * MIB, "after-the-reload").status_code == 200,
                 "20 MiB within the new limit")
    reaches_the_app(c, 20 * MIB)
