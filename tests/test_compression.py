"""Compression over TLS is a documented choice: by default the app's text
answers are gzipped over HTTPS as over HTTP (what a TLS scanner reports as
"BREACH: potentially vulnerable"); COMPRESS_APP_RESPONSES=0 keeps them
uncompressed for an app whose pages hold a secret and echo input, on both
ports, with no Vary: Accept-Encoding left on them, while static files are
still compressed."""

import gzip
import http.client

from test_tls import serve_tls, unverified

GZIP = {"Accept-Encoding": "gzip"}



def fetch(port: int, path: str, tls: bool) -> tuple[int, dict[str, str], bytes]:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=unverified()) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        conn.request("GET", path, headers=GZIP)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_the_apps_answers_are_compressed_over_https_by_default(containers, fixture_image, certs, figure):
    c = serve_tls(containers, fixture_image["image"], certs)
    status, headers, body = fetch(c.tls_port, "/text", tls=True)
    assert status == 200 and headers.get("content-encoding") == "gzip", headers
    assert headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == b"flaskbox " * 2000
    figure("the app's 18000-byte text over HTTPS by default, bytes sent (gzip)", str(len(body)))


def test_compress_app_responses_0_leaves_the_apps_answers_whole(containers, fixture_image, certs, figure):
    c = serve_tls(containers, fixture_image["image"], certs, COMPRESS_APP_RESPONSES="0")
    sizes = []
    for port, tls in ((c.tls_port, True), (c.port, False)):
        status, headers, body = fetch(port, "/text", tls)
        assert status == 200 and "content-encoding" not in headers, headers
        # Nothing varies with Accept-Encoding any more: no Vary says so.
        assert "vary" not in headers and body == b"flaskbox " * 2000
        sizes.append(len(body))
        # Static files hold no secrets: still compressed.
        status, headers, body = fetch(port, "/static/app.0123abcd.css", tls)
        assert status == 200 and headers.get("content-encoding") == "gzip", headers
        assert headers["vary"] == "Accept-Encoding"
    figure("COMPRESS_APP_RESPONSES=0: the app's 18000-byte text over HTTPS and HTTP, bytes sent",
           ", ".join(map(str, sizes)))
