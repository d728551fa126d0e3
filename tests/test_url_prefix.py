"""An app served under a URL prefix (/shop behind a proxy): URL_PREFIX, and
in production a trusted proxy's X-Forwarded-Prefix, give url_for, redirects
and static URLs that start with it, whether the proxy strips the prefix or
passes the path whole, in both modes. An untrusted X-Forwarded-Prefix is
ignored. Pure logic first (prefix.apply), then the board app
(tests/apps/board) in real containers."""

import re

import pytest

from flaskbox.request import prefix

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("path, header, trust, script, rest", [
    ("/cart", "", True, "/shop", "/cart"),  # the proxy stripped the prefix
    ("/shop/cart", "", True, "/shop", "/cart"),  # it passed the path whole
    ("/shop", "", True, "/shop", ""),
    ("/shopping", "", True, "/shop", "/shopping"),  # not under the prefix
    ("/cart", "/market/", True, "/market", "/cart"),  # the proxy's header wins
    ("/cart", "/a, /market", True, "/market", "/cart"),  # the nearest proxy's
    ("/cart", "/market", False, "/shop", "/cart"),  # not believed in debug mode
    ("/cart", "javascript:x", True, "/shop", "/cart"),  # not a path
    # Another host to a browser (//evil.example/cart: an open redirect).
    ("/cart", "//evil.example", True, "/shop", "/cart"),
    ("/cart", "/a//b", True, "/shop", "/cart"),
    ("/cart", "/a/../b", True, "/shop", "/cart"),  # dot segments
    ("/cart", "/..", True, "/shop", "/cart"),
    ("/cart", "/.well-known/x", True, "/.well-known/x", "/cart"),  # a dot begins a name
])
def test_apply(path, header, trust, script, rest):
    environ = {"PATH_INFO": path, "SCRIPT_NAME": ""}
    if header:
        environ["HTTP_X_FORWARDED_PREFIX"] = header
    prefix.apply(environ, "/shop", trust)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script, rest)


def urls(c, path="/whoami", **kwargs):
    body = c.wait_http(path).json() if not kwargs else c.request(path, **kwargs).json()
    return body["index"], body["static"]


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_url_prefix_in_both_modes(containers, app_images, mode_args):
    c = containers.run(*mode_args, image=app_images("board"), env={"URL_PREFIX": "/shop/"})
    # A proxy that passes the path whole, and one that strips the prefix.
    assert urls(c, "/shop/whoami") == ("/shop/", "/shop/static/board.css")
    assert urls(c, "/whoami") == ("/shop/", "/shop/static/board.css")
    redirect = c.request("/shop/entries", method="POST", body=b"body=x", headers=FORM)
    assert redirect.status == 302 and redirect.headers["location"].endswith("/shop/"), redirect.headers
    page = c.request("/shop/")
    assert page.status == 200 and 'href="/shop/static/board.css"' in page.text
    assert 'EventSource("/shop/events")' in page.text
    # The static URL url_for gave is served (by nginx in production).
    style = c.request("/shop/static/board.css")
    assert style.status == 200 and "the board app's own style" in style.text
    if not mode_args:
        # nginx's ETag (mtime-size in hex), not Werkzeug's: served from disk.
        assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', style.headers["etag"]), style.headers


def test_a_trusted_proxys_forwarded_prefix(containers, app_images):
    c = containers.run(image=app_images("board"), env={"TRUSTED_PROXIES": "127.0.0.2"})
    c.wait_http("/whoami")
    header = {"X-Forwarded-Prefix": "/market"}
    assert urls(c, headers=header, source="127.0.0.2") == ("/market/", "/market/static/board.css")
    # Anyone else's header is dropped by nginx: the app stays at /.
    assert urls(c, headers=header, source="127.0.0.1") == ("/", "/static/board.css")
    redirect = c.request("/entries", method="POST", body=b"body=x", source="127.0.0.2",
                         headers={**FORM, **header})
    assert redirect.headers["location"].endswith("/market/"), redirect.headers
