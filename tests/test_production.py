"""Production mode: nginx on PORT -> unix socket -> uWSGI -> the app."""

import uuid

import pytest

from helpers import REPO


@pytest.fixture
def prod(containers):
    c = containers.run()
    c.wait_http("/")
    return c


def test_index_page_is_rendered_through_nginx(prod):
    name = f"John{uuid.uuid4().hex[:8]}"
    resp = prod.request(f"/?name={name}")
    assert resp.status == 200
    assert f"Hello, {name}!" in resp.text
    assert resp.headers["content-type"].startswith("text/html")
    # nginx fronts every response and does not advertise its version.
    assert resp.headers["server"] == "nginx"


def test_query_parameter_is_escaped(prod):
    resp = prod.request("/?name=%3Cscript%3E")
    assert resp.status == 200
    assert "<script>" not in resp.text
    assert "&lt;script&gt;" in resp.text


def test_json_route(prod):
    name = uuid.uuid4().hex[:8]
    resp = prod.request(f"/api/hello?name={name}")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"message": f"Hello, {name}!"}


FAVICON_LINK = '<link rel="icon" href="/static/favicon.ico"'


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_the_sample_page_links_a_favicon_that_is_served(containers, mode_args):
    """Every browser asks for /favicon.ico: the sample answers it (no 404 in
    the console), and its page links the same icon."""
    c = containers.run(*mode_args)
    page = c.wait_http("/")
    assert FAVICON_LINK in page.text, page.text
    icon = (REPO / "app" / "static" / "favicon.ico").read_bytes()
    assert icon[:4] == b"\0\0\1\0"  # an ICO file's header
    for path in ("/static/favicon.ico", "/favicon.ico"):
        resp = c.request(path)
        assert (resp.status, resp.body) == (200, icon), (path, resp.status)
        assert resp.headers["content-type"] in ("image/vnd.microsoft.icon", "image/x-icon"), resp.headers


def test_unknown_path_is_404(prod):
    assert prod.request(f"/no-such-page-{uuid.uuid4().hex}").status == 404


def test_static_file_is_served_by_nginx_not_python(containers, fixture_image):
    # The fixture app has no static route at all (static_folder=None), so the
    # only way /static/proof.txt can answer with this build's token is nginx.
    c = containers.run(image=fixture_image["image"])
    c.wait_http("/")
    resp = c.request("/static/proof.txt")
    assert resp.status == 200, c.logs()
    assert resp.text == f"static {fixture_image['static_token']}\n"
    # Served from disk: nginx's ETag and Last-Modified for the file.
    assert "etag" in resp.headers and "last-modified" in resp.headers
    # A missing static file falls through to the app (test_static.py), whose
    # own 404 page this is, not nginx's.
    missing = c.request("/static/missing.txt")
    assert missing.status == 404
    assert "<center>nginx</center>" not in missing.text


def test_traceback_never_reaches_the_client(containers, fixture_image):
    secret = uuid.uuid4().hex
    c = containers.run(image=fixture_image["image"], env={"SECRET_TOKEN": secret})
    c.wait_http("/")
    resp = c.request("/boom")
    assert resp.status == 500
    for leak in (secret, "Traceback", "RuntimeError", "app.py"):
        assert leak not in resp.text, f"{leak!r} leaked to the client"
    # ...but the operator does get it, in the container log.
    c.wait_until(lambda: secret in c.logs(), "the traceback in docker logs", timeout=10)


def test_any_wsgi_callable_named_by_app_module(containers, fixture_image):
    token = uuid.uuid4().hex
    c = containers.run(image=fixture_image["image"],
                       env={"APP_MODULE": "plain:application", "ECHO_TOKEN": token})
    resp = c.wait_http("/some/path")
    assert resp.text == f"plain wsgi {token} /some/path\n"


def test_uwsgi_options_from_uwsgi_variables_win_over_app_ini(containers):
    # app.ini's processes are the default's (2 on 2 CPUs) unless
    # UWSGI_PROCESSES sets them.
    c = containers.run(env={"UWSGI_PROCESSES": "3"})
    c.wait_http("/")
    logs = c.logs()
    assert "spawned uWSGI worker 3 " in logs
    assert "spawned uWSGI worker 4 " not in logs


def test_body_over_max_body_size_is_413(containers):
    c = containers.run(env={"MAX_BODY_SIZE": "1k"})
    c.wait_http("/")
    assert c.request("/", method="POST", body=b"x" * 4096).status == 413
    # Within the limit the request reaches the app (GET-only route: 405).
    assert c.request("/", method="POST", body=b"x" * 512).status == 405


def test_dash_d_production_is_the_default_mode(containers):
    c = containers.run("-d", "production")
    resp = c.wait_http("/api/hello")
    assert resp.headers["server"] == "nginx"
    assert "Starting uWSGI" in c.logs()
