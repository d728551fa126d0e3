"""Every body PEP 3333 allows reaches the client whole, and is logged as
whole, when a bare WSGI app sends no Content-Length, as prometheus_client's
`make_wsgi_app()` and engine.io (Flask-SocketIO's handshake) do: a list, a
tuple, an empty list, 3 MB in a list, write() then a list, and
wsgi.file_wrapper. Before, with sync workers (the default), a list or a
tuple went out raw under the chunked header the wrapper had promised: nginx
refused it as invalid chunking, the client got no answer at all, and the
access log said 200."""

import pytest
from test_cut_responses import access_line, fetch

from helpers import REPO

EXPECTED = {
    "/list": b"plain list\n",
    "/tuple": b"plain tuple\n",
    "/empty": b"",
    "/big-list": b"".join(b"%07d\n" % i for i in range(375000)),
    "/write-then-list": b"written, then listed\n",
    "/file": (REPO / "tests" / "fixture_app" / "plain.py").read_bytes(),
}


@pytest.fixture(scope="module", params=["sync", "gevent", "debug"])
def server(request, module_containers):
    args, env = {"sync": ((), {}), "gevent": ((), {"WORKER_CLASS": "gevent"}),
                 "debug": (("-d", "debug"), {})}[request.param]
    container = module_containers.run(*args, env={"APP_MODULE": "plain:application", **env})
    container.wait_http("/ready")
    return container, request.param


@pytest.mark.parametrize("path", EXPECTED)
def test_a_body_without_content_length_arrives_whole_and_is_logged_whole(server, path):
    container, mode = server
    status, body, ending, request_id = fetch(container, path)
    assert (status, ending) == (200, "complete"), (status, ending, body[:200], container.logs()[-2000:])
    assert body == EXPECTED[path], (len(body), body[:200])
    if mode != "debug":  # the dev server keeps no access log of nginx's
        assert access_line(container, request_id).endswith(" done=ok")


def test_an_apps_own_prometheus_metrics_mounted_beside_flask_are_served(containers, app_images):
    # tests/apps/board mounts prometheus_client's make_wsgi_app() at
    # /metrics, as its docs show: a list body, no Content-Length.
    c = containers.run(image=app_images("board"))
    c.wait_http("/")
    status, body, ending, request_id = fetch(c, "/metrics")
    assert (status, ending) == (200, "complete"), (status, ending, c.logs()[-2000:])
    assert b"# TYPE python_info gauge" in body, body[:500]
    assert access_line(c, request_id).endswith(" done=ok")
