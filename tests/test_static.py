"""Static files: where they live, turning nginx's route off, caching, gzip, and
what is never served from them (dotfiles, symlinks out), or falls through
to the app (a missing file)."""

import gzip

import pytest


def test_static_url_and_path_can_be_moved(containers, fixture_image):
    env = {"STATIC_URL": "/assets", "STATIC_PATH": "/app/public"}
    c = containers.serving(image=fixture_image["image"], env=env)
    resp = c.request("/assets/asset.txt")
    assert resp.status == 200 and resp.text == f"public {fixture_image['static_token']}\n"
    # /static is no longer nginx's: it reaches the app, which has no such route.
    old = c.request("/static/proof.txt")
    assert old.status == 404 and "nginx" not in old.text


def test_static_route_can_be_turned_off(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"], env={"STATIC_ENABLED": "0"})
    resp = c.request("/static/proof.txt")
    # Flask's 404 (the fixture app has no static route), not nginx's file.
    assert resp.status == 404
    assert fixture_image["static_token"] not in resp.text and "<center>nginx</center>" not in resp.text


def test_fingerprinted_files_are_cached_for_good_others_revalidate(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"])
    fingerprinted = c.request("/static/app.0123abcd.css")
    assert fingerprinted.status == 200
    max_age = int(fingerprinted.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert max_age >= 365 * 24 * 3600

    dated = c.request("/static/report.20240115.css")
    assert dated.status == 200 and dated.headers["cache-control"] == "no-cache"

    plain = c.request("/static/proof.txt")
    assert plain.status == 200
    assert plain.headers["cache-control"] == "no-cache"
    assert plain.headers["etag"] and plain.headers["last-modified"]
    # Revalidation answers 304 without the body.
    again = c.request("/static/proof.txt", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status == 304 and again.body == b""


@pytest.mark.parametrize("path", ["/static/app.0123abcd.css", "/static/proof.txt"])
def test_a_304_carries_the_vary_of_its_200(server, path):
    # RFC 9110 15.4.5: a 304 sends the Vary its 200 would; REDbot flagged
    # the 304 of a compressible file without it. A file under gzip's 1 KB
    # (proof.txt) is compressible all the same, and varies the same way.
    c = server
    full = c.request(path, headers={"Accept-Encoding": "gzip"})
    assert full.status == 200 and full.headers["vary"] == "Accept-Encoding"
    again = c.request(path, headers={"Accept-Encoding": "gzip", "If-None-Match": full.headers["etag"]})
    assert again.status == 304 and again.headers["vary"] == "Accept-Encoding"
    # Once, not also from gzip_vary.
    raw = c.raw(f"GET {path} HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n"
                "Connection: close\r\n\r\n".encode())
    assert raw.partition(b"\r\n\r\n")[0].count(b"\r\nVary:") == 1


def test_text_responses_are_gzipped_when_asked(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"])
    plain = c.request("/text")
    assert "content-encoding" not in plain.headers
    zipped = c.request("/text", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers.get("vary", "")
    assert gzip.decompress(zipped.body) == plain.body
    assert len(zipped.body) < len(plain.body) / 10
    css = c.request("/static/app.0123abcd.css", headers={"Accept-Encoding": "gzip"})
    assert css.headers["content-encoding"] == "gzip"


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving()


@pytest.mark.parametrize("path", ["/static/.env", "/static/.git/config", "/static/sub/.hidden",
                                  "/static/%2eenv", "/static/sub/%2Ehidden", "/static//.env"])
def test_dotfiles_are_never_served(server, fixture_image, path):
    resp = server.request(path)
    assert resp.status == 404
    assert fixture_image["static_token"] not in resp.text
    # Not even by the app behind: nginx's own 404 page.
    assert "<center>nginx</center>" in resp.text


def test_well_known_stays_reachable(server, fixture_image):
    # The app's own route (ACME challenges, security.txt)...
    resp = server.request("/.well-known/security.txt")
    assert resp.status == 200 and resp.text == "well-known security.txt\n"
    # ...and a .well-known folder among the static files.
    resp = server.request("/static/.well-known/static.txt")
    assert resp.status == 200 and resp.text == f"well-known static {fixture_image['static_token']}\n"


def test_symlink_out_of_the_static_folder_is_not_followed(server):
    # static/source.py -> ../app.py: the app's source must not be served.
    resp = server.request("/static/source.py")
    assert resp.status == 403
    assert "deliberately unlike the sample" not in resp.text


def test_missing_static_file_falls_through_to_the_app(server, fixture_image):
    # A blueprint's own static folder, under the same URL prefix.
    resp = server.request("/static/bp/bp.css")
    assert resp.status == 200 and resp.text == "/* blueprint static */\n"
    # A file nginx has is still nginx's, with its caching headers.
    assert server.request("/static/sub/visible.txt").text == f"visible {fixture_image['static_token']}\n"
