"""The settings table's last chapter: TLS at the edge (tls.py checks the
files and renders nginx's lines), with what it asks of compression and
HSTS."""

from __future__ import annotations

from ..start import tls
from .forms import flag, whole
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "TLS_CERT",
        default="",
        form="an absolute path such as /etc/tls/tls.crt (letters, digits and ._~+@- in its names)",
        parse=tls.file_path,
        doc=("The certificate (PEM, then its intermediates): with `TLS_KEY`, nginx serves HTTPS and "
             "HTTP/2 on `TLS_PORT` beside `PORT`; re-read on SIGHUP "
             "([production.md](production.md#https-and-http2))."),
        enforced=(
            "start.tls.check",
            "start.tls.check_files",
            "start.tls.enabled (tls.server_conf, tls.template_values, the ports checked)",
            "sidecars.certificates.main (tls-watch)",
            "start.file_vars.PATH_SETTINGS (TLS_CERT_FILE refused: it is a path already)",
            "__main__.cmd_prepare (applied before nginx starts)",
            "arbiter.helpers.Helpers (the certificate watcher)",
            "arbiter.arbiter.Arbiter.apply_certificate (SIGHUP: its check, in a child)",
            "sidecars.certificates.main_apply (tls-apply: re-read on SIGHUP, in a child of the arbiter)",
        ),
    ),
    Setting(
        "TLS_KEY",
        default="",
        form="an absolute path such as /etc/tls/tls.key (letters, digits and ._~+@- in its names)",
        parse=tls.file_path,
        doc="The certificate's private key (PEM, not encrypted); set with `TLS_CERT`.",
        enforced=(
            "start.tls.check",
            "start.tls.check_files",
            "start.tls.enabled (tls.server_conf, tls.template_values, the ports checked)",
            "sidecars.certificates.main (tls-watch)",
            "start.file_vars.PATH_SETTINGS (TLS_KEY_FILE refused: it is a path already)",
            "__main__.cmd_prepare (applied before nginx starts)",
            "sidecars.certificates.main_apply (tls-apply: re-read on SIGHUP, in a child of the arbiter)",
        ),
    ),
    Setting(
        "TLS_PORT",
        # HTTPS's own port, as PORT is HTTP's: Docker lets any user bind it
        # in the container's network namespace; with --network host, 8443.
        default="443",
        form="a port number from 1 to 65535, other than PORT",
        parse=whole(1, 65535),
        doc="Port nginx serves HTTPS on, when `TLS_CERT` and `TLS_KEY` are set.",
        enforced=(
            "start.tls.check",
            "start.tls.server_conf (listen ... ssl)",
            "start.tls.redirect (the redirect's port)",
            "settings.resolve._check_ports_free",
        ),
    ),
    Setting(
        "TLS_REDIRECT",
        default="0",
        form="1 (plain HTTP is redirected to HTTPS) or 0",
        parse=flag,
        doc=("`1`: plain HTTP gets a 308 redirect to HTTPS, except the health probes (`/-/healthy`, "
             "`/-/alive`) and requests from `TRUSTED_PROXIES`."),
        enforced=(
            "start.tls.check (refused without TLS)",
            "start.tls.redirect (the 308 in tls.conf, asking nginx.conf's $flaskbox_to_https)",
        ),
    ),
    Setting(
        "COMPRESS_APP_RESPONSES",
        default="1",
        form="1 (nginx gzips the app's text answers) or 0 (static files only)",
        parse=flag,
        doc=("`1`: the app's text answers are gzipped for clients that ask, over HTTP and HTTPS. `0`: only "
             "static files are, for pages that hold a secret and echo input (BREACH: "
             "[production.md](production.md#compression))."),
        enforced=(
            "request.outbound.template_values (APP_GZIP)",
            "nginx.conf: gzip ${APP_GZIP}",
            "pool.wsgi.from_record",
            "request.request.Request.start_response (as the Serve's `compressed`: Vary: Accept-Encoding)",
        ),
    ),
    Setting(
        "HSTS_MAX_AGE",
        # A year: browsers then never try plain HTTP for this host (no
        # includeSubDomains: other hosts under it may not have TLS).
        default="31536000",
        form="a whole number of seconds from 0 (no header) to 999999999",
        parse=tls.max_age,
        doc=("`Strict-Transport-Security: max-age=...` on HTTPS responses only (the app's own header "
             "wins); `0`: none."),
        enforced=(
            "start.tls.template_values (HSTS_HEADER)",
            "nginx.conf: $flaskbox_hsts",
        ),
    ),
)
