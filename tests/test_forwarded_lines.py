"""Behind a trusted proxy that appends its own header line (HAProxy's
`http-request add-header`), the proxy's line is believed, not the client's:
for X-Forwarded-Proto, -Host, -Port, -Prefix and Forwarded alike, the last
line, and the last element of a comma list. Before, nginx 1.22's
$http_x_forwarded_proto held only the first line, the client's: a client
sending "X-Forwarded-Proto: https" through such a proxy got scheme https.
Sent through raw sockets, two lines of each, from a trusted address
(127.0.0.2) and from an untrusted one (127.0.0.1)."""

import json
import socket

import pytest

from flaskbox.request import forwarded

PROXY, CLIENT = "127.0.0.2", "127.0.0.1"


@pytest.fixture(scope="module")
def server(module_containers):
    c = module_containers.run(env={"TRUSTED_PROXIES": PROXY})
    c.wait_http("/")
    return c


def echo(server, lines: list[str], source: str) -> dict:
    """GET /echo with these header lines, sent as they are from `source`."""
    data = ("GET /echo HTTP/1.1\r\nHost: backend.internal\r\n" + "".join(f"{line}\r\n" for line in lines)
            + "Connection: close\r\n\r\n").encode()
    address = ("127.0.0.1", server.port)
    with socket.create_connection(address, timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:300]
    return json.loads(raw.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("client, proxy, scheme", [
    ("https", "http", "http"), ("http", "https", "https"),
    ("javascript", "https", "https"), ("https", "ftp", "http")])
def test_the_proxys_scheme_wins(server, client, proxy, scheme):
    seen = echo(server, [f"X-Forwarded-Proto: {client}", f"X-Forwarded-Proto: {proxy}"], PROXY)
    assert seen["scheme"] == scheme
    assert seen["external_url"].startswith(f"{scheme}://")


def test_the_proxys_host_and_port_win(server):
    seen = echo(server, ["X-Forwarded-Host: evil.example", "X-Forwarded-Host: shop.example",
                         "X-Forwarded-Port: 1", "X-Forwarded-Port: 8443",
                         "X-Forwarded-Proto: http", "X-Forwarded-Proto: https"], PROXY)
    assert seen["host"] == "shop.example:8443"
    assert seen["server_port"] == "8443"
    assert seen["external_url"] == "https://shop.example:8443/echo"
    assert seen["headers"]["X-Forwarded-Host"] == "shop.example"
    assert seen["headers"]["X-Forwarded-Port"] == "8443"


def test_the_proxys_prefix_and_forwarded_element_are_passed_on(server):
    seen = echo(server, ["X-Forwarded-Prefix: /evil", "X-Forwarded-Prefix: /shop",
                         'Forwarded: for=198.51.100.1;proto=https;host=evil.example',
                         'Forwarded: for="[2001:db8::1]:4711";proto=http;host=shop.example'], PROXY)
    assert seen["headers"]["X-Forwarded-Prefix"] == "/shop"
    assert seen["headers"]["Forwarded"] == 'for="[2001:db8::1]:4711";proto=http;host=shop.example'


def test_the_last_element_of_a_comma_list_wins(server):
    seen = echo(server, ["X-Forwarded-Proto: https, http", "X-Forwarded-Host: evil.example, shop.example",
                         "Forwarded: for=198.51.100.1;proto=https, for=203.0.113.9;proto=http"], PROXY)
    assert seen["scheme"] == "http"
    assert seen["host"] == "shop.example"
    assert seen["headers"]["Forwarded"] == "for=203.0.113.9;proto=http"


def test_x_forwarded_for_still_walks_back_from_the_last(server):
    seen = echo(server, ["X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 203.0.113.7"], PROXY)
    assert seen["remote_addr"] == "203.0.113.7"


def test_from_an_untrusted_address_no_line_counts_or_reaches_the_app(server):
    lines = [f"{name}: {value}" for name, value in (
        ("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Port", "8443"), ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "/evil"), ("X-Forwarded-Prefix", "/evil"), ("Forwarded", "proto=https"),
        ("Forwarded", "proto=https"), ("X-Forwarded-For", "198.51.100.1"))]
    seen = echo(server, lines, CLIENT)
    assert (seen["scheme"], seen["host"], seen["remote_addr"]) == ("http", "backend.internal", CLIENT)
    assert seen["headers"] == {"X-Real-Ip": CLIENT}


# --- the choice itself, without a container ---------------------------------

def environ(**headers) -> dict:
    return {"HTTP_HOST": "backend.internal", "SERVER_PORT": "80", "wsgi.url_scheme": "https, http",
            **{f"HTTP_{name}": value for name, value in headers.items()}}


def test_uwsgis_joined_lines_give_the_last_element():
    env = environ(X_FORWARDED_PROTO="https, http", X_FORWARDED_HOST="a.example, b.example:8080")
    assert forwarded.apply(env, True, []) is None
    seen = (env["wsgi.url_scheme"], env["HTTP_HOST"], env["SERVER_PORT"])
    assert seen == ("http", "b.example:8080", "8080")


def test_untrusted_lines_are_dropped_and_the_scheme_is_http():
    env = environ(X_FORWARDED_PROTO="https", X_FORWARDED_HOST="evil.example", FORWARDED="proto=https")
    assert forwarded.apply(env, False, []) is None
    assert env == {"HTTP_HOST": "backend.internal", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}


@pytest.mark.parametrize("value, reason", [("a.example:@evil.example", "not a host name"),
                                           ("evil.example", "not in ALLOWED_HOSTS")])
def test_a_bad_forwarded_host_is_refused(value, reason):
    assert reason in forwarded.apply(environ(X_FORWARDED_HOST=f"a.example, {value}"), True, ["a.example"])


@pytest.mark.parametrize("port", ["0", "65536", "99999", "080"])
def test_a_port_werkzeug_would_refuse_is_not_believed(port):
    # With it, the app saw no host at all (url_for(_external=True) gave http:///).
    env = environ(X_FORWARDED_PORT=port)
    assert forwarded.apply(env, True, []) is None
    seen = (env["HTTP_HOST"], env["SERVER_PORT"], "HTTP_X_FORWARDED_PORT" in env)
    assert seen == ("backend.internal", "80", False)


@pytest.mark.parametrize("value", ["for=a, junk", 'for="unterminated', "for=a;;", ""])
def test_a_malformed_last_forwarded_element_is_dropped(value):
    env = environ(FORWARDED=value)
    forwarded.apply(env, True, [])
    assert "HTTP_FORWARDED" not in env
