"""HTTPS and HTTP/2 at the edge (TLS_CERT, TLS_KEY, TLS_PORT), on loopback,
with a self-signed certificate the openssl CLI makes here: HTTP/2 with curl,
TLS 1.2 and 1.3 only (openssl s_client, against a control server that does
speak 1.1), HSTS on HTTPS responses only, the app sees https however a
client lies, the optional redirect spares the health probes, bad files stop
the start with exit code 2, and a renewed certificate is served within 3 s
of its files being replaced, with no failed request and nothing else
touched."""

import hashlib
import http.client
import json
import os
import ssl
import subprocess
import threading
import time

import pytest

from downloads import MB, Download
from helpers import CERT, KEY, free_port, make_pair, share_with_container
from load import Load


def openssl(*args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=timeout, **kwargs)



def serve_tls(containers, image, certs, **env):
    tls_port = free_port()
    c = containers.run(image=image, env={"TLS_CERT": CERT, "TLS_KEY": KEY, "TLS_PORT": str(tls_port), **env},
                       docker_args=("-v", f"{certs}:/etc/tls:ro"))
    c.tls_port = tls_port
    c.wait_http("/-/healthy")
    return c


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def https(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=unverified())
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def served_fingerprint(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def file_fingerprint(path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()


def test_http2_over_tls_and_the_app_sees_https(containers, fixture_image, certs):
    c = serve_tls(containers, fixture_image["image"], certs)
    # A client's claim of another scheme changes nothing: the connection wins.
    result = subprocess.run(["curl", "--http2", "-sk", "-D", "-", "-H", "X-Forwarded-Proto: http",
                             f"https://127.0.0.1:{c.tls_port}/echo"],
                            capture_output=True, text=True, timeout=30)
    # (text mode reads curl's CRLFs as plain line ends)
    head, _, body = result.stdout.partition("\n\n")
    assert head.startswith("HTTP/2 200"), result.stdout + result.stderr
    echo = json.loads(body)
    assert echo["scheme"] == "https" and echo["secure"] is True, echo
    assert echo["external_url"] == f"https://127.0.0.1:{c.tls_port}/echo", echo
    assert echo["server_port"] == str(c.tls_port)
    assert "strict-transport-security: max-age=31536000" in head.lower().splitlines(), head
    # The plain port beside it: http, whatever the client claims, and no HSTS.
    plain = c.request("/echo", headers={"X-Forwarded-Proto": "https"})
    assert plain.status == 200 and plain.json()["scheme"] == "http", plain.body
    assert "strict-transport-security" not in plain.headers
    # TLS 1.2 clients get HTTP/2 too (ALPN), and HTTP/1.1 clients still work.
    one = subprocess.run(["curl", "--http1.1", "-sk", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          f"https://127.0.0.1:{c.tls_port}/echo"], capture_output=True, text=True, timeout=30)
    assert one.stdout == "1.1 200", one.stdout + one.stderr


def test_only_tls_1_2_and_1_3_are_spoken(containers, fixture_image, certs):
    c = serve_tls(containers, fixture_image["image"], certs)

    def s_client(port: int, *flags: str) -> subprocess.CompletedProcess:
        return openssl("s_client", "-connect", f"127.0.0.1:{port}", *flags, input="", timeout=20)

    for version in ("-tls1_2", "-tls1_3"):
        result = s_client(c.tls_port, version)
        expected = {"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[version]
        assert result.returncode == 0 and f"New, {expected}, Cipher is " in result.stdout, result.stdout
    # OpenSSL 3 clients refuse TLS 1.1 by themselves at the default security
    # level: lower it, and prove on a control server that the client does
    # speak 1.1, so that a refusal below is the server's.
    legacy = ("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    control_port = free_port()
    control = subprocess.Popen(["openssl", "s_server", "-accept", str(control_port), "-www",
                                "-cert", str(certs / "tls.crt"), "-key", str(certs / "tls.key"), *legacy],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c.wait_until(lambda: "Protocol  : TLSv1.1" in s_client(control_port, *legacy).stdout,
                     "the control server speaking TLS 1.1", timeout=10)
    finally:
        control.terminate()
        control.wait(10)
    refused = s_client(c.tls_port, *legacy)
    assert refused.returncode != 0 and "alert protocol version" in refused.stdout + refused.stderr, \
        refused.stdout + refused.stderr


def test_redirect_to_https_spares_health_probes_and_trusted_proxies(containers, fixture_image, certs):
    c = serve_tls(containers, fixture_image["image"], certs, TLS_REDIRECT="1", HSTS_MAX_AGE="600",
                  TRUSTED_PROXIES="127.0.0.2")
    for method in ("GET", "POST"):
        resp = c.request("/echo?x=1", method=method, body=b"a=1" if method == "POST" else None)
        assert resp.status == 308, (method, resp.status, resp.body)
        assert resp.headers["location"] == f"https://127.0.0.1:{c.tls_port}/echo?x=1"
        assert "strict-transport-security" not in resp.headers
    assert c.request("/-/healthy").status == 200
    assert c.request("/-/alive").status == 200
    c.wait_healthy()
    # A proxy that terminated TLS itself speaks over plain HTTP: not redirected.
    assert c.request("/echo", source="127.0.0.2").status == 200
    status, headers, body = https(c.tls_port, "/echo")
    assert status == 200 and json.loads(body)["scheme"] == "https"
    assert headers["strict-transport-security"] == "max-age=600"


def test_no_hsts_with_max_age_0(containers, fixture_image, certs):
    c = serve_tls(containers, fixture_image["image"], certs, HSTS_MAX_AGE="0")
    status, headers, _ = https(c.tls_port, "/echo")
    assert status == 200 and "strict-transport-security" not in headers


def bad_input_cases(certs):
    unreadable = certs / "unreadable.key"
    unreadable.write_bytes((certs / "tls.key").read_bytes())
    unreadable.chmod(0o600)  # root's, on the host: not the serving uid's
    garbage = certs / "garbage.crt"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    garbage_key = certs / "garbage.key"
    garbage_key.write_text("not a key\n")
    share_with_container(garbage, garbage_key)
    port, tls_port = str(free_port()), str(free_port())
    cases = {
        "missing": ({"TLS_CERT": "/etc/tls/nope.crt", "TLS_KEY": KEY},
                    "TLS_CERT='/etc/tls/nope.crt': no such file; expected a PEM file"),
        "unreadable": ({"TLS_CERT": CERT, "TLS_KEY": "/etc/tls/unreadable.key"},
                       "TLS_KEY='/etc/tls/unreadable.key' is not readable by uid 10001"),
        "not a certificate": ({"TLS_CERT": "/etc/tls/garbage.crt", "TLS_KEY": KEY},
                              "TLS_CERT='/etc/tls/garbage.crt' holds no certificate OpenSSL can read"),
        "not a key": ({"TLS_CERT": CERT, "TLS_KEY": "/etc/tls/garbage.key"},
                      "TLS_KEY='/etc/tls/garbage.key' holds no private key OpenSSL can read"),
        "another certificate's key": (
            {"TLS_CERT": CERT, "TLS_KEY": "/etc/tls/other.key"},
            "TLS_KEY='/etc/tls/other.key' is not the private key of the certificate"),
        "only the certificate": ({"TLS_CERT": CERT}, "TLS_CERT is set but TLS_KEY is not: HTTPS needs both"),
        "only the key": ({"TLS_KEY": KEY}, "TLS_KEY is set but TLS_CERT is not: HTTPS needs both"),
        "TLS_PORT out of range": ({"TLS_CERT": CERT, "TLS_KEY": KEY, "TLS_PORT": "70000"},
                                  "TLS_PORT='70000' is not valid: expected a port number from 1 to 65535"),
        "TLS_PORT is PORT": ({"PORT": port, "TLS_CERT": CERT, "TLS_KEY": KEY, "TLS_PORT": port},
                             f"TLS_PORT={port} is PORT's too"),
        "TLS_CERT not a path": ({"TLS_CERT": "tls.crt", "TLS_KEY": KEY},
                                "TLS_CERT='tls.crt' is not valid: expected an absolute path"),
    }
    # A port a non-root process may bind on the host network, where not the case's own.
    return {case: ({"TLS_PORT": tls_port, **env}, message) for case, (env, message) in cases.items()}


def test_bad_certificates_and_settings_exit_2_naming_them(containers, fixture_image, certs):
    make_pair(certs, "other")
    share_with_container(certs)
    for case, (env, message) in bad_input_cases(certs).items():
        result = containers.run_once(env=env, docker_args=("-v", f"{certs}:/etc/tls:ro"),
                                     image=fixture_image["image"])
        output = result.stdout + result.stderr
        assert result.returncode == 2, (case, output)
        assert message in output, (case, output)
        assert "serving" not in output and "uWSGI" not in output, (case, output)


class TLSLoop:
    """Clients that each make one HTTPS request per new connection (a new
    handshake each time, so a new certificate shows at once), counting every
    outcome, until stopped."""

    def __init__(self, port: int, clients: int = 4):
        self.port, self.ok, self.failed = port, 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                status, _, _ = https(self.port, "/echo")
                if status == 200:
                    self.ok += 1
                else:
                    self.failed.append(status)
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append(repr(exc))

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.mark.slow
def test_a_renewal_is_served_within_3_s_and_touches_nothing_else(containers, fixture_image, certs, figure):
    """Renewing is replacing the files, as certbot and cert-manager do: new
    handshakes get the new certificate within 3 s, with no signal and no
    failed request; the app's process, its memory, and a 24 s download over
    HTTP/2 that spans the renewal carry on untouched."""
    c = serve_tls(containers, fixture_image["image"], certs, UWSGI_PROCESSES="1")
    before = served_fingerprint(c.tls_port)
    assert before == file_fingerprint(certs / "tls.crt")
    counted = c.request("/count").json()
    download = Download(f"https://127.0.0.1:{c.tls_port}/blob/12", rate=MB // 2, http2=True).start()
    tls_loop = TLSLoop(c.tls_port)
    try:
        with Load(c.port, path="/echo", connections=8, seconds=120, keep_alive=False) as load:
            # Bounded in time, not in speed: a busy machine makes fewer handshakes.
            c.wait_until(lambda: tls_loop.ok > 30 and len(load.outcomes) > 100 and download.received(),
                         "load on both ports and the download under way", timeout=60)
            make_pair(certs)  # the renewal
            renewed_at = time.monotonic()
            renewed = file_fingerprint(certs / "tls.crt")
            assert renewed != before
            c.wait_until(lambda: served_fingerprint(c.tls_port) == renewed, "the renewed certificate served",
                         interval=0.05)
            served_after = time.monotonic() - renewed_at
            served = tls_loop.ok
            c.wait_until(lambda: tls_loop.ok > served + 30, "30 HTTPS requests after the renewal", timeout=60)
            spanned = download.running()
            load.stop()
    finally:
        tls_loop.stop()
    download.wait(timeout=120)
    figure("certificate files replaced to new handshakes served with it, seconds", f"{served_after:.2f}")
    figure("HTTPS requests across a certificate renewal", f"{tls_loop.ok} ok, {len(tls_loop.failed)} failed")
    assert served_after < 3
    assert tls_loop.failed == [], f"{tls_loop.failed[:5]}\n{c.logs()}"
    assert Load.failures(load.outcomes) == [], f"{Load.summary(load.outcomes)}\n{c.logs()}"
    # The 24 s download over HTTP/2 that spanned it: whole, every byte.
    assert spanned, f"the download ended before the renewal was served: {download}"
    assert download.whole and download.version == "2", download
    assert download.sha256 == download.answer_headers["x-sha256"]
    # The app was left alone: the same process, still counting.
    after = c.request("/count").json()
    assert after["pid"] == counted["pid"] and after["count"] > counted["count"]
    assert "SIGHUP" not in c.logs()


def test_a_half_written_renewal_is_refused_and_the_certificate_in_use_stays(containers, fixture_image, certs):
    c = serve_tls(containers, fixture_image["image"], certs)
    before = served_fingerprint(c.tls_port)
    # The key of another certificate, as a renewal caught half-way leaves it.
    make_pair(certs, "other")
    os.replace(certs / "other.key", certs / "tls.key")
    c.wait_until(lambda: "is not the private key of the certificate" in c.logs(), "the refusal in the log")
    try:
        served = served_fingerprint(c.tls_port)
    except ssl.SSLError as exc:  # seen once (an internal-error alert): what nginx said then
        raise AssertionError(f"{exc}\n{c.logs()[-4000:]}") from exc
    assert served == before
    # The renewal completed: served.
    make_pair(certs)
    c.wait_until(lambda: served_fingerprint(c.tls_port) == file_fingerprint(certs / "tls.crt"),
                 "the completed renewal served")


def test_a_hups_certificate_check_is_a_childs_and_pid_1_loads_no_openssl(containers, fixture_image, certs):
    """The certificate's check at a HUP runs in a child of PID 1's
    (`tls-apply`), which says its verdict in the log: the arbiter's own
    memory never holds libssl or libcrypto (some 4 MB), before the HUP or
    after it."""
    c = serve_tls(containers, fixture_image["image"], certs)
    refused = "is not the private key of the certificate"

    def openssl_in_pid_1() -> list[str]:
        maps = c.exec("cat", "/proc/1/maps")
        assert maps.returncode == 0 and "python" in maps.stdout, maps.stderr
        return [line for line in maps.stdout.splitlines() if "libssl" in line or "libcrypto" in line]

    assert openssl_in_pid_1() == []
    # A half-written renewal: the watcher refuses it once; the HUP's check,
    # in its child, once more.
    make_pair(certs, "other")
    os.replace(certs / "other.key", certs / "tls.key")
    c.wait_until(lambda: c.logs().count(refused) == 1, "the watcher's refusal")
    c.signal("HUP", "1")
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the reload")
    assert c.logs().count(refused) == 2, c.logs()
    assert openssl_in_pid_1() == [], c.logs()
    make_pair(certs)  # the renewal completed
    c.wait_until(lambda: served_fingerprint(c.tls_port) == file_fingerprint(certs / "tls.crt"),
                 "the renewal served")
    assert https(c.tls_port, "/")[0] == 200
