"""A revalidation answers 304 whenever the app's validator matches, whoever
serves the file and whether or not nginx compressed it (issue 62), against
real containers: WhiteNoise from PyPI (its If-None-Match compares byte for
byte), Flask's send_file, a handler that compares as WhiteNoise does, and
nginx's own static location. Through nginx's gzip the first answer's ETag
is weak; sent back as it came, or in its strong form, it gets 304 with no
body; a changed file comes whole. The start's log says who serves
/static/ when nginx does not (tests/apps/searx-like, shaped like SearXNG:
static_folder=None, WhiteNoise around app.wsgi_app). The rules in process:
test_revalidation_rules.py."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from containers import ContainerFactory

APP = Path(__file__).parent / "apps" / "searx-like" / "searx"
GZIP = {"Accept-Encoding": "gzip"}
THEME = ["/static/themes/simple/css/searxng.min.css", "/static/themes/simple/js/searxng.min.js"]


@pytest.fixture(scope="module", params=["sync", "gevent"])
def searx(app_images, request):
    """The app under each worker class: gevent's requests take their own
    way through the wrapper (GeventServe, no watchdog)."""
    factory = ContainerFactory(app_images("searx-like"))
    yield factory.serving(env={"WORKER_CLASS": request.param})
    factory.cleanup()


def whole(resp) -> bytes:
    """The body as the client reads it: gunzipped when nginx compressed it."""
    assert resp.headers.get("content-encoding") == "gzip", resp.headers
    return gzip.decompress(resp.body)


def revalidated(container, path: str, etag: str, status: int = 304):
    resp = container.request(path, headers={**GZIP, "If-None-Match": etag})
    assert resp.status == status, (path, etag, resp.status, resp.headers)
    return resp


def test_whitenoise_files_revalidate_through_nginx_gzip(searx):
    for path in THEME:
        first = searx.request(path, headers=GZIP)
        assert first.status == 200 and whole(first) == (APP / path.lstrip("/")).read_bytes()
        etag = first.headers["etag"]
        assert etag.startswith('W/"'), etag  # nginx's gzip made WhiteNoise's strong ETag weak
        for sent in (etag, etag[2:]):  # as it came, and its strong form
            again = revalidated(searx, path, sent)
            # No body; the 200's validators and caching headers (WhiteNoise's max_age=3600).
            assert again.body == b"" and again.headers["etag"] == sent, again.headers
            assert again.headers["cache-control"] == first.headers["cache-control"] == "max-age=3600, public"
            assert again.headers["vary"] == "Accept-Encoding" and "content-encoding" not in again.headers
        # The weak form is the wrapper's 304 (WhiteNoise's own compare says
        # no): it keeps Last-Modified too, as nginx's own 304s do.
        assert revalidated(searx, path, etag).headers["last-modified"] == first.headers["last-modified"]
        # A file changed since (another ETag): whole.
        changed = revalidated(searx, path, 'W/"6a893459-1205"', 200)
        assert whole(changed) == (APP / path.lstrip("/")).read_bytes()


def test_a_handler_that_compares_byte_for_byte_gets_304_for_the_weak_form(searx):
    first = searx.request("/page", headers=GZIP)
    assert first.status == 200 and whole(first).startswith(b"<p>results</p>\n")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    for sent in (etag, etag[2:]):
        assert revalidated(searx, "/page", sent).body == b""
    # HEAD too, and an ETag the page no longer has comes whole.
    head = searx.request("/page", method="HEAD", headers={**GZIP, "If-None-Match": etag})
    assert head.status == 304 and head.body == b""
    assert whole(revalidated(searx, "/page", '"stale"', 200)).startswith(b"<p>results</p>\n")


def test_an_answer_never_to_be_stored_is_sent_whole(searx):
    # Cache-Control: no-store: no stored copy for a 304 to refresh.
    resp = searx.request("/private", headers={**GZIP, "If-None-Match": '"private-1"'})
    assert resp.status == 200 and whole(resp).startswith(b"<p>results</p>\n")


def test_flasks_send_file_revalidates_and_a_changed_file_comes_whole(searx):
    first = searx.request("/download/report.css", headers=GZIP)
    assert first.status == 200 and whole(first) == (APP / "data" / "report.css").read_bytes()
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    for sent in (etag, etag[2:]):
        assert revalidated(searx, "/download/report.css", sent).body == b""
    # The file changes in place: the ETag the client holds no longer matches.
    changed = b"/* report v2 */\n" + (APP / "data" / "report.css").read_bytes()
    searx.exec("python3", "-c", f"open('/app/searx/data/report.css', 'wb').write({changed!r})", user="0")
    resp = revalidated(searx, "/download/report.css", etag, 200)
    assert whole(resp) == changed and resp.headers["etag"] not in (etag, etag[2:])


def test_the_start_log_says_whitenoise_serves_static_not_nginx(searx):
    line = ("flaskbox: the static files under /static/ are the app's to serve, not nginx's: WhiteNoise, "
            "wrapped around app.wsgi_app, serves 2 files there, from /app/searx/static/themes/simple; the "
            "app has no static folder (static_folder=None), and nginx's folder for it, /app/static, does "
            "not exist")
    searx.wait_until(lambda: line in searx.logs().splitlines(), "the start's line on static files")
    # The access log: the theme file came from the app (an upstream time), not from disk.
    resp = searx.request(THEME[0])
    rid = resp.headers["x-request-id"]
    searx.wait_until(lambda: any(f" id={rid} " in entry and " ut=- " not in entry
                                 for entry in searx.logs().splitlines()), "the theme file's access line")


def test_nginx_own_static_files_compare_weakly_and_need_no_line(module_containers):
    served = module_containers.serving()
    first = served.request("/static/app.0123abcd.css", headers=GZIP)
    assert first.status == 200 and whole(first).startswith(b"/* ")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    for sent in (etag, etag[2:]):
        again = revalidated(served, "/static/app.0123abcd.css", sent)
        assert again.body == b"" and again.headers["vary"] == "Accept-Encoding"
    assert whole(revalidated(served, "/static/app.0123abcd.css", '"0-0"', 200)).startswith(b"/* ")
    # nginx serves the app's static folder: no line says otherwise.
    assert "are the app's to serve" not in served.logs()
