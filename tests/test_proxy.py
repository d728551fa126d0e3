"""Behind another proxy: X-Forwarded-For, -Proto, -Host, -Port, -Prefix and
Forwarded are believed only from TRUSTED_PROXIES, all of them alike; from
anyone else they change nothing the app sees and never reach it."""

import pytest

CLIENT = "203.0.113.7"
SPOOF = {
    "X-Forwarded-For": CLIENT,
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-Ssl": "on",
    "Forwarded": "for=198.51.100.1;proto=https;host=evil.example",
    "X-Real-IP": "198.51.100.2",
}


def echo(containers, image, env=None, headers=None):
    c = containers.serving(image=image, env=env)
    return c, c.request("/echo", headers={"Host": "app.example:8091", **(headers or {})}).json()


def test_forwarded_headers_change_nothing_by_default(containers, fixture_image):
    _, seen = echo(containers, fixture_image["image"], headers=SPOOF)
    assert seen["remote_addr"] == "127.0.0.1"
    assert (seen["scheme"], seen["secure"]) == ("http", False)
    assert seen["host"] == "app.example:8091"
    assert seen["external_url"] == "http://app.example:8091/echo"
    # None of them reaches the app, where a ProxyFix or a hand-written
    # lookup could believe it; X-Real-IP is nginx's own conclusion.
    assert seen["headers"] == {"X-Real-Ip": "127.0.0.1"}


def test_a_bad_scheme_never_becomes_the_url_scheme(containers, fixture_image):
    _, seen = echo(containers, fixture_image["image"], env={"TRUSTED_PROXIES": "127.0.0.1"},
                   headers={"X-Forwarded-Proto": "javascript"})
    assert seen["scheme"] == "http"
    assert seen["external_url"].startswith("http://")


@pytest.mark.parametrize("proxies", ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/8, 127.0.0.1/32"])
def test_trusted_proxies_pass_the_real_client_address(containers, fixture_image, proxies):
    c, seen = echo(containers, fixture_image["image"], env={"TRUSTED_PROXIES": proxies},
                   headers={"X-Forwarded-For": CLIENT})
    assert seen["remote_addr"] == CLIENT
    # nginx logs the real client too.
    c.wait_until(lambda: any(line.startswith(CLIENT) and "/echo" in line for line in c.stdout_lines()),
                 "the access log line with the client address", timeout=5)


def test_a_trusted_proxy_is_believed_for_everything_alike(containers, fixture_image):
    headers = {"X-Forwarded-For": f"198.51.100.9, {CLIENT}", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "shop.example", "X-Forwarded-Port": "8443"}
    _, seen = echo(containers, fixture_image["image"], env={"TRUSTED_PROXIES": "127.0.0.1"}, headers=headers)
    # The nearest proxy's value of each, as Werkzeug's ProxyFix(x_for=1,
    # x_proto=1, x_host=1, x_port=1) would take them.
    assert seen["remote_addr"] == CLIENT
    assert (seen["scheme"], seen["secure"]) == ("https", True)
    assert seen["host"] == "shop.example:8443"
    assert seen["external_url"] == "https://shop.example:8443/echo"
    # Passed on as received, so an app's own ProxyFix concludes the same.
    assert seen["headers"]["X-Forwarded-For"] == headers["X-Forwarded-For"]
    assert seen["headers"]["X-Forwarded-Proto"] == "https"


def test_untrusted_proxy_list_does_not_cover_loopback(containers, fixture_image):
    _, seen = echo(containers, fixture_image["image"], env={"TRUSTED_PROXIES": "10.0.0.0/8"}, headers=SPOOF)
    assert seen["remote_addr"] == "127.0.0.1"
    assert seen["scheme"] == "http" and seen["host"] == "app.example:8091"


# The list, and the rest of forwarded.RELATIVES: each a header some
# proxy sets and some app or middleware believes.
RELATIVES = ["X-Script-Name", "X-Scheme", "X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Server",
             "X-Forwarded-Ssl", "Front-End-Https", "X-Forwarded-Scheme", "X-Forwarded-Path",
             "X-Forwarded-Uri", "X-Forwarded-Protocol", "X-Url-Scheme", "X-Original-URI", "X-Arr-Ssl",
             "X-Original-Host", "X-Host", "X-Forwarded-By", "X-Forwarded-Method", "X-Client-IP", "Client-IP",
             "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP",
             "X-Original-Forwarded-For", "X-Envoy-External-Address", "X-Forwarded", "Forwarded-For",
             "X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info"]


def test_no_proxy_header_from_a_client_reaches_the_app(containers, fixture_image):
    from flaskbox.request.forwarded import RELATIVES as DROPPED

    assert {f"HTTP_{name.upper().replace('-', '_')}" for name in RELATIVES} == DROPPED
    c = containers.serving(image=fixture_image["image"], env={"TRUSTED_PROXIES": "127.0.0.3"})
    sent = {name: f"/evil/{index}" for index, name in enumerate(RELATIVES)}
    sent.update(SPOOF)
    # From a client: none reaches the app, where its own proxy fix would
    # believe it (X-Script-Name made one build its links under /evil).
    # X-Real-IP is nginx's own conclusion.
    seen = c.request("/headers", headers=sent, source="127.0.0.2").json()
    leaked = sorted(name for name in sent if name.lower() in seen and name.lower() != "x-real-ip")
    assert leaked == [], leaked
    echoed = c.request("/echo", headers=sent, source="127.0.0.2").json()
    assert echoed["headers"] == {"X-Real-Ip": "127.0.0.2"}
    # From a trusted proxy, each relative reaches the app as it was sent
    # (but X-Forwarded-Ssl, which nginx always empties: uWSGI would make it
    # HTTPS=on; X-Forwarded-Proto says the scheme).
    seen = c.request("/headers", headers=sent, source="127.0.0.3").json()
    passed = {name: len(sent[name]) for name in RELATIVES if name != "X-Forwarded-Ssl"}
    assert {name: seen.get(name.lower()) for name in passed} == passed
