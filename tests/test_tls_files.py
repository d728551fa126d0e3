"""TLS_CERT, TLS_KEY and the other TLS settings, judged without a container
(flaskbox/start/tls.py), against files the openssl CLI makes here: each bad one
is refused with a message naming the variable, the file and the accepted
form; test_tls.py checks that a real container stops with exit code 2."""

import subprocess
import threading

import pytest

from fake_host import FakeHost, resolve
from flaskbox import settings
from flaskbox.layout import Runtime
from flaskbox.sidecars import certificates
from flaskbox.start import render, tls
from helpers import REPO


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed(directory, name: str) -> tuple[str, str]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost")
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    cert, key = self_signed(directory, "good")
    _, other_key = self_signed(directory, "other")
    encrypted = directory / "encrypted.key"
    openssl("pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", str(encrypted))
    garbage = directory / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return {"cert": cert, "key": key, "other_key": other_key, "encrypted": str(encrypted),
            "garbage": str(garbage), "dir": str(directory)}


def values(**given: str) -> dict[str, str]:
    base = {"PORT": "8080", "TLS_CERT": "", "TLS_KEY": "", "TLS_PORT": "8443", "TLS_REDIRECT": "0",
            "HSTS_MAX_AGE": "31536000"}
    return {**base, **given}


def refused(message: str, start: int | None = 0, **given: str) -> None:
    with pytest.raises(tls.TLSError) as error:
        tls.check(values(**given), start)
    assert message in str(error.value), str(error.value)


def test_a_matching_pair_is_accepted(pki):
    tls.check(values(TLS_CERT=pki["cert"], TLS_KEY=pki["key"]), 0)
    assert resolve({"TLS_CERT": pki["cert"], "TLS_KEY": pki["key"]}).values["TLS_CERT"] == pki["cert"]


def test_a_missing_file_is_named(pki):
    refused(f"TLS_CERT='{pki['dir']}/nope.crt': no such file; expected a PEM file: the certificate",
            TLS_CERT=f"{pki['dir']}/nope.crt", TLS_KEY=pki["key"])
    refused(f"TLS_KEY='{pki['dir']}/nope.key': no such file; expected a PEM file holding the certificate's "
            "private key", TLS_CERT=pki["cert"], TLS_KEY=f"{pki['dir']}/nope.key")
    refused(f"TLS_CERT='{pki['dir']}' is a directory", TLS_CERT=pki["dir"], TLS_KEY=pki["key"])


def test_a_file_without_a_certificate_is_refused(pki):
    refused(f"TLS_CERT='{pki['garbage']}' holds no certificate OpenSSL can read",
            TLS_CERT=pki["garbage"], TLS_KEY=pki["key"])
    # A key where the certificate belongs.
    refused(f"TLS_CERT='{pki['key']}' holds no certificate", TLS_CERT=pki["key"], TLS_KEY=pki["key"])


def test_a_file_without_a_key_is_refused(pki):
    refused(f"TLS_KEY='{pki['garbage']}' holds no private key OpenSSL can read",
            TLS_CERT=pki["cert"], TLS_KEY=pki["garbage"])


def test_a_key_of_another_certificate_is_refused(pki):
    refused(f"TLS_KEY='{pki['other_key']}' is not the private key of the certificate in "
            f"TLS_CERT='{pki['cert']}'", TLS_CERT=pki["cert"], TLS_KEY=pki["other_key"])


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(pki):
    refused(f"TLS_KEY='{pki['encrypted']}' is encrypted: nginx cannot ask for its passphrase",
            TLS_CERT=pki["cert"], TLS_KEY=pki["encrypted"])


def test_one_file_without_the_other_is_refused(pki):
    refused("TLS_CERT is set but TLS_KEY is not: HTTPS needs both", TLS_CERT=pki["cert"])
    refused("TLS_KEY is set but TLS_CERT is not: HTTPS needs both", TLS_KEY=pki["key"])


def test_port_and_redirect_rules(pki):
    pair = {"TLS_CERT": pki["cert"], "TLS_KEY": pki["key"]}
    refused("TLS_PORT=8080 is PORT's too", TLS_PORT="8080", **pair)
    refused("TLS_PORT=443 is below 1024, the lowest port a non-root process may bind here",
            start=1024, TLS_PORT="443", **pair)
    tls.check(values(TLS_PORT="443", **pair), 0)
    refused("TLS_REDIRECT=1 sends plain HTTP to HTTPS, which is off", TLS_REDIRECT="1")
    # Through the settings table: the same message, as a SettingError (exit 2).
    with pytest.raises(settings.SettingError, match="TLS_PORT=443 is below 1024"):
        resolve({"PORT": "8080", "TLS_PORT": "443", **pair}, host=FakeHost(port_start=1024))


def test_the_rendered_lines(pki):
    on = values(TLS_CERT=pki["cert"], TLS_KEY=pki["key"])
    directive = tls.server_conf(on, http2_directive=True)
    assert "listen 8443 ssl default_server;\nhttp2 on;\n" in directive
    parameter = tls.server_conf(on, http2_directive=False)
    assert "listen 8443 ssl http2 default_server;\n" in parameter and "http2 on" not in parameter
    # SHARE_PORT=1: shared with another container, as PORT is.
    shared = tls.server_conf({**on, "SHARE_PORT": "1"}, http2_directive=True)
    assert "listen 8443 ssl default_server reuseport;\nhttp2 on;\n" in shared
    # nginx reads the checked copies (certificates.py) at each handshake.
    assert "ssl_certificate $flaskbox_tls_cert;\nssl_certificate_key $flaskbox_tls_key;\n" in parameter
    assert "ssl_protocols TLSv1.2 TLSv1.3;\n" in parameter
    assert "listen" not in tls.server_conf(values(), http2_directive=True)
    assert tls.template_values(on) == {"HSTS_HEADER": "max-age=31536000"}
    assert tls.template_values({**on, "HSTS_MAX_AGE": "0"}) == {"HSTS_HEADER": ""}
    # TLS_REDIRECT=1: the 308 after the TLS lines, naming a port that is not
    # HTTPS's own; without it, no check at all.
    assert "if (" not in directive
    redirected = tls.server_conf({**on, "TLS_REDIRECT": "1"}, http2_directive=True)
    assert redirected.endswith("if ($flaskbox_to_https) {\n"
                               "    return 308 https://$flaskbox_host_name:8443$request_uri;\n}\n")
    standard = tls.server_conf({**on, "TLS_REDIRECT": "1", "TLS_PORT": "443"}, http2_directive=True)
    assert "return 308 https://$flaskbox_host_name$request_uri;" in standard
    assert tls.template_values(values())["HSTS_HEADER"] == ""


def test_nginx_conf_fills_with_the_tls_placeholders(tmp_path):
    resolved = resolve({"RUNTIME_DIR": str(tmp_path)})
    values = render.template_values(resolved.record())
    text = render.fill((REPO / "nginx.conf").read_text(), values, "nginx.conf")
    assert f"include {tmp_path}/nginx/tls.conf;" in text
    assert '"" "";' in text  # no TLS: no HSTS value


def test_a_checked_pair_is_put_in_use_in_one_rename_and_a_bad_one_never(pki, tmp_path, capsys):
    runtime = Runtime(tmp_path)
    assert certificates.apply(pki["cert"], pki["key"], runtime)
    first = (runtime.tls_current / "cert.pem").read_bytes()
    assert first == open(pki["cert"], "rb").read()
    assert oct((runtime.tls_current / "key.pem").stat().st_mode)[-3:] == "600"
    # The same pair again changes nothing.
    version = certificates.in_use(runtime)
    assert certificates.apply(pki["cert"], pki["key"], runtime) and certificates.in_use(runtime) == version
    # A renewal half done (the key of another certificate): refused, named,
    # and the pair in use stays.
    assert not certificates.apply(pki["cert"], pki["other_key"], runtime)
    assert "is not the private key of the certificate" in capsys.readouterr().err
    assert certificates.in_use(runtime) == version
    renewed_cert, renewed_key = self_signed(tmp_path, "renewed")
    assert certificates.apply(renewed_cert, renewed_key, runtime)
    assert certificates.in_use(runtime) != version
    assert (runtime.tls_current / "cert.pem").read_bytes() == open(renewed_cert, "rb").read()
    assert (runtime.tls_dir / version).is_dir()  # kept for a handshake already under way


def test_a_pair_in_use_but_not_whole_is_copied_again(pki, tmp_path):
    # What two applies at once once left (the watcher and a SIGHUP's, on one
    # renewal): `current` naming a folder one of them had half copied.
    # Taken for "in use already", it stayed so, and no handshake succeeded.
    runtime = Runtime(tmp_path)
    assert certificates.apply(pki["cert"], pki["key"], runtime)
    (runtime.tls_current / "cert.pem").unlink()
    assert certificates.apply(pki["cert"], pki["key"], runtime)
    assert (runtime.tls_current / "cert.pem").read_bytes() == open(pki["cert"], "rb").read()
    assert (runtime.tls_current / "key.pem").read_bytes() == open(pki["key"], "rb").read()


def test_applies_at_once_leave_one_whole_pair(pki, tmp_path):
    runtime = Runtime(tmp_path)
    renewed = self_signed(tmp_path, "renewed")
    for pair in [renewed, (pki["cert"], pki["key"])] * 3:
        threads = [threading.Thread(target=certificates.apply, args=(*pair, runtime)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for path, name in zip(pair, certificates.FILES, strict=True):
            assert (runtime.tls_current / name).read_bytes() == open(path, "rb").read()
        assert not [p.name for p in runtime.tls_dir.iterdir() if p.name.endswith(".part") or
                    (p.name.startswith(".") and p.is_dir())]
