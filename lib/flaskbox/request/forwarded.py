"""What a request's forwarded headers may tell the app, decided per request
in the WSGI wrapper (serve.py), before the app runs.

nginx passes X-Forwarded-Proto, -Host, -Port, -Prefix and Forwarded on as
they arrived, every line of each, and says in X-Flaskbox-Peer whether the
connection came from a proxy in TRUSTED_PROXIES. uWSGI joins repeated lines
with ", ", in order. nginx itself cannot choose: 1.22 (Debian 12) gives
$http_x_forwarded_proto only the first line, which is the client's when the
trusted proxy appends its own line (HAProxy's `http-request add-header`).

From a trusted proxy the last element of each, the one the nearest proxy
added, is believed, if it has a valid form; anything else is dropped. From
anyone else all of them are dropped. The host a trusted proxy names is held
to the rule nginx holds Host to (layout.HOST_FORM) and to ALLOWED_HOSTS.

Their relatives (RELATIVES: other names proxies give the scheme, the host,
the path or prefix the app is under, and the client's address) are not
flaskbox's to apply, but apps and their middleware read them: an app's own
proxy fix honours X-Script-Name, so any client could make it build its
links under /evil. They reach the app only from a trusted proxy, as
received; from anyone else they are dropped. (nginx always replaces
X-Real-IP with its own conclusion, and empties X-Forwarded-Ssl, which
uWSGI would turn into HTTPS=on.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..layout import HOST_FORM, PORT_FORM, PREFIX_FORM

PROTO, HOST, PORT, PREFIX, FORWARDED = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                                        "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")
KEYS = (PROTO, HOST, PORT, PREFIX, FORWARDED)
# Every other header a proxy may set, as the WSGI environ names them.
RELATIVES = frozenset(f"HTTP_{name.upper().replace('-', '_')}" for name in (
    # The path the app is under, or the URL the client asked for.
    "X-Script-Name", "X-Forwarded-Path", "X-Forwarded-Uri", "X-Original-URL", "X-Original-URI",
    "X-Rewrite-URL",
    # The scheme.
    "X-Scheme", "X-Forwarded-Scheme", "X-Forwarded-Protocol", "X-Url-Scheme", "X-Forwarded-Ssl",
    "Front-End-Https", "X-Arr-Ssl",
    # The host, the proxy, the method.
    "X-Forwarded-Server", "X-Original-Host", "X-Host", "X-Forwarded-By", "X-Forwarded-Method",
    # The client's address.
    "X-Client-IP", "Client-IP", "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP",
    "X-Cluster-Client-IP", "X-Original-Forwarded-For", "X-Envoy-External-Address", "X-Forwarded",
    "Forwarded-For",
    # The client's certificate, which an app may take as its identity.
    "X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info",
))
# What a request from anyone but a trusted proxy must not bring to the app.
UNTRUSTED = RELATIVES.union(KEYS)

VALID_HOST = re.compile(HOST_FORM)
# A port Werkzeug takes (1 to 65535): with another, the app saw no host.
VALID_PORT = re.compile(PORT_FORM)
VALID_PREFIX = re.compile(PREFIX_FORM)
# RFC 7239: pairs token=(token or quoted-string) separated by ";". The last
# element is the one after the last comma outside quotes.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = rf'{_TOKEN}=(?:{_TOKEN}|"(?:[^"\\]|\\.)*")'
LAST_FORWARDED = re.compile(rf"(?:^|,)[ \t]*({_PAIR}(?:[ \t]*;[ \t]*{_PAIR})*)[ \t]*\Z")


def last(value: str | None) -> str:
    """The last element of a comma-separated list (its last line's last)."""
    return (value or "").rpartition(",")[2].strip()


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether the host part of `host` (a Host value, valid in form) is one
    of ALLOWED_HOSTS, matched as nginx's `map { hostnames; }` matches:
    `.a.example` is a.example and its subdomains, `*.a.example` the
    subdomains only; a trailing dot is no difference. Empty: any host."""
    patterns = list(allowed)
    if not patterns:
        return True
    name = host.lower()
    name = name[:name.index("]") + 1] if name.startswith("[") else name.partition(":")[0]
    name = name[:-1] if name.endswith(".") else name
    for pattern in patterns:
        if ":" in pattern and not pattern.startswith("["):
            pattern = f"[{pattern}]"
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif pattern.startswith("."):
            if name == pattern[1:] or name.endswith(pattern):
                return True
        elif name == pattern:
            return True
    return False


def with_port(host: str, port: str) -> str:
    """`host` with its port replaced by `port`."""
    name = host[:host.index("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return f"{name}:{port}"


def apply(environ: dict, trusted: bool, allowed: Iterable[str], tls: bool = False) -> str | None:
    """Sets the environ's scheme, Host, SERVER_PORT and forwarded headers to
    what may be believed. `tls`: the request came over nginx's own HTTPS
    (TLS_PORT). Returns why the request must be refused with 400 (a trusted
    proxy named a malformed or unlisted host), or None."""
    # The scheme of the connection nginx took, whatever a client claims
    # (uWSGI copies X-Forwarded-Proto, all of it, here); only a trusted
    # proxy, which speaks for its own client, may say otherwise.
    environ["wsgi.url_scheme"] = "https" if tls else "http"
    if not trusted:
        # Nothing of theirs is believed: dropped, if there is any (seldom:
        # then this test is all it costs).
        if not UNTRUSTED.isdisjoint(environ):
            for key in UNTRUSTED.intersection(environ):
                del environ[key]
        return None
    received = {key: environ.pop(key, None) for key in KEYS}
    proto = last(received[PROTO]).lower()
    if proto in ("http", "https"):
        environ["wsgi.url_scheme"] = environ[PROTO] = proto
    host = last(received[HOST])
    if received[HOST] is not None and host:
        if not VALID_HOST.fullmatch(host):
            return f"X-Forwarded-Host {host!r} from a trusted proxy is not a host name with an optional port"
        environ[HOST] = environ["HTTP_HOST"] = host
    port = last(received[PORT])
    if VALID_PORT.fullmatch(port):
        environ[PORT] = port
        environ["HTTP_HOST"] = with_port(environ.get("HTTP_HOST", ""), port)
    if not host_allowed(environ.get("HTTP_HOST", ""), allowed):
        return f"host {environ.get('HTTP_HOST')!r} from a trusted proxy is not in ALLOWED_HOSTS"
    served_port = environ.get("HTTP_HOST", "").rpartition("]")[2].rpartition(":")[2]
    if VALID_PORT.fullmatch(served_port):
        environ["SERVER_PORT"] = served_port
    prefix = last(received[PREFIX])
    if VALID_PREFIX.fullmatch(prefix):
        environ[PREFIX] = prefix
    forwarded = LAST_FORWARDED.search(received[FORWARDED] or "")
    if forwarded:
        environ[FORWARDED] = forwarded.group(1)
    return None
