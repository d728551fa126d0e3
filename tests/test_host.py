"""The app sees the host and port the client used, so url_for(_external=True),
OAuth callbacks and absolute redirects point back at the published port
(docker run -p 8091:80); nginx's own redirects stay relative, whatever Host
a client sends."""

import json

import pytest


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving()


def raw_echo(server, request_line: bytes, headers: bytes = b"") -> dict:
    raw = server.raw(request_line + b"\r\n" + headers + b"Connection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def test_host_keeps_the_port_the_client_used(server):
    seen = server.request("/echo", headers={"Host": "shop.example.com:8091"}).json()
    assert seen["host"] == "shop.example.com:8091"
    assert seen["external_url"] == "http://shop.example.com:8091/echo"
    assert seen["server_port"] == "8091"


def test_default_port_and_plain_host(server):
    seen = server.request("/echo", headers={"Host": "shop.example.com"}).json()
    assert seen["host"] == "shop.example.com"
    assert seen["external_url"] == "http://shop.example.com/echo"


def test_absolute_form_request_line_wins_over_the_host_header(server):
    # RFC 9112: with an absolute-form target the Host header is ignored, as
    # nginx itself does; the app must not see the other name.
    seen = raw_echo(server, b"GET http://real.example:8443/echo HTTP/1.1", b"Host: malformedhost\r\n")
    assert seen["host"] == "real.example:8443"


def test_no_host_header_gives_localhost(server):
    seen = raw_echo(server, b"GET /echo HTTP/1.0")
    assert seen["host"] == "localhost"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:666"])
def test_nginx_redirects_are_relative(server, host):
    # /static/sub is a directory: nginx itself redirects to /static/sub/.
    raw = server.raw(f"GET /static/sub HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head = raw.partition(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 301"), head
    location = [line for line in head.split("\r\n") if line.lower().startswith("location:")]
    assert location == ["Location: /static/sub/"]
