"""A Host is a host name or an address, with an optional numeric port, and
nothing else: any other form gets 400 from nginx before Python, whether or
not ALLOWED_HOSTS is set, so the app never sees userinfo or a second host in
`request.host`. Before, nginx read "example.com:@evil.example" as host
example.com and passed the whole text on: ALLOWED_HOSTS=example.com let it
through with 200. A trusted proxy's X-Forwarded-Host is held to the same
rule (by flaskbox/request/serve.py, which alone sees its last line).

Choices where RFC 3986 leaves room: a trailing dot (an absolute name) is
the same host, served and matched against ALLOWED_HOSTS without it; an
empty port ("example.com:") is refused, as no client sends one."""

import json
import socket

import pytest

from flaskbox.request import forwarded

ALLOWED = {"ALLOWED_HOSTS": "example.com", "TRUSTED_PROXIES": "127.0.0.2"}

REFUSED = ["example.com:@evil.example", "example.com:evil.example", "example.com:80@evil.example",
           "user@example.com", "example.com@evil.example", "example.com:", "example.com:80:81",
           "example.com:8o", "[::1", "[::1]x", "::1", "[fe80::1%25eth0]", "example..com", ".example.com",
           "-example.com", "example.com/evil", "example.com\\evil", "exa mple.com",
           "example.com:0", "example.com:080", "example.com:65536", "example.com:99999"]
SERVED = ["example.com", "EXAMPLE.com", "example.com:8091", "example.com.", "example.com.:80",
          "example.com:65535", "example.com:1"]


@pytest.fixture(scope="module")
def servers(module_containers):
    """(with ALLOWED_HOSTS, without)"""
    listed = module_containers.run(env=ALLOWED)
    anyhost = module_containers.run()
    listed.wait_http("/-/healthy")
    anyhost.wait_http("/")
    return listed, anyhost


def status_and_body(container, data: bytes, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """Sends `data` as it is from `source` (a loopback address); the status
    and body of the answer."""
    with socket.create_connection(("127.0.0.1", container.port), timeout=10,
                                  source_address=(source, 0)) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1]), raw.partition(b"\r\n\r\n")[2]


def get(host: str, target: str = "/echo", extra: bytes = b"") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: {host}\r\n".encode() + extra
            + b"Connection: close\r\n\r\n")


@pytest.mark.parametrize("host", REFUSED)
def test_malformed_hosts_get_400_from_nginx_with_or_without_allowed_hosts(servers, host):
    for server in servers:
        status, body = status_and_body(server, get(host))
        assert status == 400, (server.name, host)
        assert b"<center>nginx</center>" in body


@pytest.mark.parametrize("host", SERVED)
def test_host_names_with_a_port_and_a_trailing_dot_are_served(servers, host):
    for server in servers:
        status, body = status_and_body(server, get(host))
        assert status == 200, host
        # As sent (Werkzeug leaves out a default port :80).
        assert json.loads(body)["host"] == host.removesuffix(":80")


@pytest.mark.parametrize("host", ["[::1]:8080", "[::1]", "127.0.0.1:8091", "[2001:db8::7]"])
def test_address_literals_are_served_when_any_host_is(servers, host):
    _, anyhost = servers
    assert status_and_body(anyhost, get(host))[0] == 200
    listed, _ = servers
    assert status_and_body(listed, get(host))[0] == 400


@pytest.mark.parametrize("target, expected", [
    ("http://evil@example.com/echo", 400), ("http://example.com:@evil.example/echo", 400),
    ("http://example.com:80@evil.example/echo", 400), ("http://evil.example/echo", 400),
    ("http://example.com/echo", 200), ("http://example.com:8091/echo", 200)])
def test_absolute_form_request_lines_are_held_to_the_same_rule(servers, target, expected):
    listed, _ = servers
    # The Host header is the allowed one: the host in the request line wins.
    assert status_and_body(listed, get("example.com", target))[0] == expected


@pytest.mark.parametrize("forwarded_host, expected", [
    ("example.com", 200), ("example.com:8443", 200), ("example.com.", 200),
    ("example.com:@evil.example", 400), ("example.com:", 400), ("evil.example", 400),
    ("[::1", 400)])
def test_a_trusted_proxys_forwarded_host_passes_the_same_rule(servers, forwarded_host, expected):
    listed, _ = servers
    extra = f"X-Forwarded-Host: {forwarded_host}\r\n".encode()
    status, _ = status_and_body(listed, get("backend.internal", extra=extra), source="127.0.0.2")
    assert status == expected


def test_an_untrusted_forwarded_host_changes_nothing(servers):
    listed, _ = servers
    status, body = status_and_body(listed, get("example.com", extra=b"X-Forwarded-Host: evil.example\r\n"))
    assert status == 200 and json.loads(body)["host"] == "example.com"


# --- the rule itself, without a container -----------------------------------

@pytest.mark.parametrize("host", REFUSED)
def test_the_host_form_refuses(host):
    assert not forwarded.VALID_HOST.fullmatch(host)


@pytest.mark.parametrize("host", [*SERVED, "[::1]:8080", "10.1.2.3:8080", "my_service:8000"])
def test_the_host_form_accepts(host):
    assert forwarded.VALID_HOST.fullmatch(host)


@pytest.mark.parametrize("host, allowed, expected", [
    ("example.com", ["example.com"], True), ("example.com.:80", ["example.com"], True),
    ("www.example.com", ["example.com"], False), ("www.example.com", [".example.com"], True),
    ("example.com", [".example.com"], True), ("example.com", ["*.example.com"], False),
    ("a.example.com", ["*.example.com"], True), ("[::1]:80", ["::1"], True),
    ("evil.example", [], True), ("badexample.com", [".example.com"], False)])
def test_allowed_hosts_match_as_nginx_matches(host, allowed, expected):
    assert forwarded.host_allowed(host, allowed) is expected
