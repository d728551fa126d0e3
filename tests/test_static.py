"""Static files: where they live, turning nginx's route off, caching, gzip."""

import gzip


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
