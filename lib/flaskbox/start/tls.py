"""HTTPS with HTTP/2 at the edge: TLS_CERT and TLS_KEY checked before
anything starts, and nginx's TLS server config rendered from them.

The files are judged with the standard library's ssl module, which reads
them with the same OpenSSL nginx uses: a missing or unreadable file, one
that holds no certificate or no usable key, a key that belongs to another
certificate, and an encrypted key (nginx would ask for its passphrase) each
stop the start with a message naming the variable and the file. nginx reads
checked copies of the files, which certificates.py keeps up to date, at each
handshake: a renewal reloads nothing.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping

from . import ports

# TLS 1.2 and 1.3 only: 1.0 and 1.1 are deprecated (RFC 8996), and every
# browser of the last ten years speaks 1.2. For 1.2, ECDHE key exchange with
# AEAD ciphers only (forward secrecy), as Mozilla's "intermediate" profile;
# its DHE suites are left out, since they need a DH parameter file of our
# own. TLS 1.3's suites are all good and OpenSSL picks among them.
PROTOCOLS = "TLSv1.2 TLSv1.3"
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
           "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
# Where the Dockerfile leaves its finding that this nginx has the `http2`
# directive (1.25.1 and later: Debian 13). Older ones (Debian 12's 1.22,
# Ubuntu 24.04's 1.24) take `http2` as a parameter of `listen` instead.
HTTP2_DIRECTIVE_MARK = "nginx-http2-directive"

CERT_FORM = "a PEM file: the certificate, then any intermediate certificates"
KEY_FORM = "a PEM file holding the certificate's private key, not encrypted"


FILE_PATH = re.compile(r"(/[A-Za-z0-9._~+@-]+)+")


def file_path(value: str) -> str:
    """TLS_CERT's and TLS_KEY's form: empty, or a path nginx takes as it is
    (no spaces, quotes, `;` or `$`)."""
    if value and FILE_PATH.fullmatch(value) is None:
        raise ValueError(value)
    return value


def max_age(value: str) -> int:
    """HSTS_MAX_AGE's form: whole seconds, up to nine digits."""
    if not (value.isdigit() and len(value) <= 9):
        raise ValueError(value)
    return int(value)


class TLSError(ValueError):
    """A TLS setting or file nginx could not serve with; says how to fix it."""


def enabled(values: Mapping[str, str]) -> bool:
    return bool(values.get("TLS_CERT") and values.get("TLS_KEY"))


def _readable(name: str, path: str, form: str) -> None:
    try:
        with open(path, "rb") as file:
            file.read(1)
    except FileNotFoundError:
        raise TLSError(f"{name}='{path}': no such file; expected {form}, mounted there") from None
    except IsADirectoryError:
        raise TLSError(f"{name}='{path}' is a directory; expected {form}") from None
    except PermissionError:
        raise TLSError(f"{name}='{path}' is not readable by uid {os.getuid()}, which serves: make it "
                       f"readable by that uid or its group (e.g. chmod 0640 and group {os.getgid()}), or set "
                       "--user to its owner (unless that is root: the servers never run as root)") from None


def _refuse_passphrase() -> bytes:
    raise TLSError("encrypted")


def check_files(cert: str, key: str) -> None:
    """Whether nginx can serve with this certificate and key (TLSError)."""
    _readable("TLS_CERT", cert, CERT_FORM)
    _readable("TLS_KEY", key, KEY_FORM)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise TLSError(f"TLS_CERT='{cert}' holds no certificate OpenSSL can read ({exc.reason or exc}); "
                       f"expected {CERT_FORM}") from None
    try:
        context.load_cert_chain(cert, key, password=_refuse_passphrase)
    except TLSError:
        raise TLSError(f"TLS_KEY='{key}' is encrypted: nginx cannot ask for its passphrase; expected "
                       f"{KEY_FORM} (openssl pkey -in {key} -out plain.key)") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TLSError(f"TLS_KEY='{key}' is not the private key of the certificate in TLS_CERT='{cert}': "
                           "expected the key the certificate was issued for") from None
        raise TLSError(f"TLS_KEY='{key}' holds no private key OpenSSL can read for TLS_CERT's certificate "
                       f"({exc.reason or exc}); expected {KEY_FORM}") from None


def check(values: Mapping[str, str], unprivileged_port_start: int | None, host_network: bool = False) -> None:
    """The TLS settings together; the files only when both are set."""
    cert, key = values["TLS_CERT"], values["TLS_KEY"]
    if bool(cert) != bool(key):
        given, missing = ("TLS_CERT", "TLS_KEY") if cert else ("TLS_KEY", "TLS_CERT")
        raise TLSError(f"{given} is set but {missing} is not: HTTPS needs both, TLS_CERT ({CERT_FORM}) and "
                       f"TLS_KEY ({KEY_FORM}); set both, or neither")
    if not cert:
        if values["TLS_REDIRECT"] == "1":
            raise TLSError("TLS_REDIRECT=1 sends plain HTTP to HTTPS, which is off: set TLS_CERT and "
                           "TLS_KEY, or TLS_REDIRECT=0")
        return
    port = int(values["TLS_PORT"])
    if values["TLS_PORT"] == values["PORT"]:
        raise TLSError(f"TLS_PORT={port} is PORT's too: HTTPS needs a port of its own, e.g. TLS_PORT=443 "
                       "beside PORT=80, or TLS_PORT=8443 beside PORT=8080")
    start = unprivileged_port_start
    if start is not None and port < min(start, 1024):
        raise TLSError(ports.too_low("TLS_PORT", port, start, host_network, 8443))
    check_files(cert, key)


def template_values(values: Mapping[str, str]) -> dict[str, str]:
    """The placeholders nginx.conf's TLS lines use."""
    on = enabled(values)
    max_age = values["HSTS_MAX_AGE"]
    return {
        # Empty: no header (HSTS_MAX_AGE=0, or no TLS at all).
        "HSTS_HEADER": f"max-age={max_age}" if on and max_age != "0" else "",
    }


def server_conf(values: Mapping[str, str], http2_directive: bool) -> str:
    """The TLS lines of nginx's server block (tls.conf)."""
    if not enabled(values):
        return "# TLS_CERT and TLS_KEY are not set: plain HTTP only.\n"
    port = values["TLS_PORT"]
    # SHARE_PORT=1: reuseport, as PORT's listen (nginx.conf).
    shared = " reuseport" if values.get("SHARE_PORT") == "1" else ""
    listen = (f"listen {port} ssl default_server{shared};\nhttp2 on;\n" if http2_directive
              else f"listen {port} ssl http2 default_server{shared};\n")
    # The files through variables: nginx reads them at each full handshake
    # (a resumed session needs none), from the copies certificates.py keeps
    # in RUNTIME_DIR, so a renewal applies to the next handshake with no
    # reload of nginx, whose old workers would have to end the downloads
    # and HTTP/2 connections they hold (nginx.conf's maps name the files).
    return ("# Generated from TLS_CERT, TLS_KEY and TLS_PORT by flaskbox/start/tls.py.\n"
            + listen
            + "ssl_certificate $flaskbox_tls_cert;\n"
            "ssl_certificate_key $flaskbox_tls_key;\n"
            f"ssl_protocols {PROTOCOLS};\n"
            f"ssl_ciphers {CIPHERS};\n"
            # With only strong suites offered, the client's order (which
            # knows whether it has AES hardware) is the better one.
            "ssl_prefer_server_ciphers off;\n"
            # Resumed sessions skip the full handshake: one cache shared by
            # the workers (about 40000 sessions in 10 MB)...
            "ssl_session_cache shared:flaskbox_tls:10m;\n"
            "ssl_session_timeout 1d;\n"
            # ...and no session tickets: nginx never rotates their key, so one
            # key stolen from memory would decrypt every recorded session
            # since the start (Mozilla's guideline too).
            "ssl_session_tickets off;\n"
            + redirect(values))


def redirect(values: Mapping[str, str]) -> str:
    """TLS_REDIRECT=1: plain HTTP gets a 308 (not 301: a POST stays a POST,
    with its body) to HTTPS, naming the port unless it is HTTPS's own;
    nginx.conf's $flaskbox_to_https spares the probes and trusted proxies.
    Without it, no line: no request pays for the check."""
    if values.get("TLS_REDIRECT") != "1":
        return ""
    port = values["TLS_PORT"]
    suffix = "" if port == "443" else f":{port}"
    return ("if ($flaskbox_to_https) {\n"
            f"    return 308 https://$flaskbox_host_name{suffix}$request_uri;\n"
            "}\n")
