"""Static files keep the app's caching now that nginx serves them: each file
carries the max age Flask itself would send it with (asked of the app in
the same container), fingerprinted bundles are kept for good (by name:
webpack's .entry.js and [contenthash].chunk.js, esbuild's main-6INY5NWB.js,
Vite's index-DsfHo9hE.js; by Vite's manifest), and nothing whose name does
not change is (jquery-3.7.1.min.js). Blueprints' static folders, Flask-
Admin's (a real package) and one under the app's own /static as
Flask-AppBuilder's, are nginx's too, and a missing file reaches the app
with no error line. (tests/apps/dashboards; the rules without a container:
test_static_folders.py, test_fingerprinted_names.py.)"""

from __future__ import annotations

import json
import re

import pytest

from containers import ContainerFactory
from helpers import docker

YEAR = 365 * 24 * 3600
PLAIN = ["/static/assets/favicon.ico", "/static/vite/theme.css", "/static/appbuilder/css/bootstrap.css",
         "/static/dist/jquery-3.7.1.min.js"]
# By name (webpack's; esbuild's, as Angular's builder writes them; Vite's
# without its manifest), and by Vite's manifest.
FOREVER = ["/static/assets/spa.4cd1e2bb.entry.js", "/static/assets/7f3a9c1be02d4e55.chunk.js",
           "/static/dist/main-6INY5NWB.js", "/static/dist/index-DsfHo9hE.js",
           "/static/vite/main-BXk3dOP1.js", "/static/vite/main-Cu7Ts1Kq.css"]


@pytest.fixture(scope="module", params=["", "3600"], ids=["flask-default", "max-age-3600"])
def served(app_images, request):
    factory = ContainerFactory(app_images("dashboards"))
    c = factory.run(env={"DASHBOARDS_MAX_AGE": request.param} if request.param else {})
    c.wait_http("/login/")
    yield c
    factory.cleanup()


def flask_says(container, paths: list[str]) -> dict[str, str]:
    """The Cache-Control the app itself sends for each path: asked of Flask's
    test client, in the container, with the container's environment."""
    script = ("import json, sys; from dashboards import create_app; client = create_app().test_client(); "
              "print(json.dumps({p: client.get(p).headers.get('Cache-Control', '') for p in sys.argv[1:]}))")
    out = docker("exec", "-w", "/app", container.name, "python3", "-c", script, *paths).stdout
    return json.loads(out.splitlines()[-1])


def max_age(cache_control: str) -> int | None:
    found = re.search(r"max-age=(\d+)", cache_control)
    return int(found.group(1)) if found else None


def test_each_file_keeps_the_caching_flask_would_give_it(served):
    flask = flask_says(served, PLAIN)
    for path in PLAIN:
        resp = served.request(path)
        assert resp.status == 200, path
        nginx = resp.headers["cache-control"]
        if "no-cache" in flask[path]:
            assert nginx == "no-cache", (path, nginx, flask[path])
        else:
            assert max_age(nginx) == max_age(flask[path]) < YEAR, (path, nginx, flask[path])
        # Revalidation still works: 304 without a body.
        again = served.request(path, headers={"If-None-Match": resp.headers["etag"]})
        assert again.status == 304 and again.body == b""


def test_fingerprinted_bundles_are_kept_for_good(served):
    for path in FOREVER:
        resp = served.request(path)
        assert resp.status == 200 and path.rsplit("/", 1)[1] in resp.text, path
        assert max_age(resp.headers["cache-control"]) >= YEAR, (path, resp.headers["cache-control"])
    # Vite's manifest itself stays private (a dot-directory).
    assert served.request("/static/.vite/manifest.json").status == 404


def test_blueprint_folders_are_served_by_nginx_and_misses_by_the_app(served):
    admin = served.request("/admin/static/admin/js/form.js")
    assert admin.status == 200 and "function" in admin.text
    fab = served.request("/static/appbuilder/css/bootstrap.css")
    assert fab.status == 200 and "Flask-AppBuilder style" in fab.text
    missing = served.request("/static/appbuilder/css/none.css")
    assert missing.status == 404 and "<center>nginx</center>" not in missing.text  # Flask's own 404
    ids = [resp.headers["x-request-id"] for resp in (admin, fab, missing)]

    def logged() -> dict[str, str]:
        return {request_id: line for line in docker("logs", served.name).stdout.splitlines()
                for request_id in ids if f" id={request_id} " in line}

    served.wait_until(lambda: len(logged()) == 3, "the three requests in the access log")
    lines = logged()
    files, miss = [lines[ids[0]], lines[ids[1]]], lines[ids[2]]
    # No upstream: nginx sent the files (ut=-); the app answered the miss.
    assert all('" 200 ' in line and " ut=- " in line for line in files), files
    assert '" 404 ' in miss and " ut=- " not in miss, miss
    assert "[error]" not in served.logs() and "No such file" not in served.logs()
