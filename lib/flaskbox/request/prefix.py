"""An app served under a URL prefix (mounted at /shop behind a proxy): the
prefix goes into the WSGI environ's SCRIPT_NAME, where Flask and Werkzeug
take it from for url_for, redirects and static URLs.

The prefix is URL_PREFIX, or, in production, a trusted proxy's
X-Forwarded-Prefix, which wins (the wrapper keeps it only from
TRUSTED_PROXIES, only its last element and only in a path's form:
forwarded.py). Both kinds of proxy work: one that
strips the prefix (/shop/cart arrives as /cart) and one that passes the path
whole (/shop/cart arrives as /shop/cart, and the prefix is taken off
PATH_INFO here).
"""

from __future__ import annotations

from .forwarded import VALID_PREFIX


def forwarded_prefix(environ) -> str:
    """The nearest proxy's X-Forwarded-Prefix, if it is a path; "" if not."""
    value = environ.get("HTTP_X_FORWARDED_PREFIX")
    if value is None:  # nearly every request: no regular expression for it
        return ""
    value = value.rsplit(",", 1)[-1].strip()
    # The form forwarded.py lets it through in, checked again.
    return value.rstrip("/") if VALID_PREFIX.fullmatch(value) else ""


def apply(environ, prefix: str, trust_header: bool) -> None:
    """SCRIPT_NAME set to the prefix, and the prefix taken off PATH_INFO
    when the proxy passed it on."""
    prefix = (forwarded_prefix(environ) if trust_header else "") or prefix
    if not prefix:
        return
    path = environ.get("PATH_INFO", "")
    if path == prefix or path.startswith(prefix + "/"):
        environ["PATH_INFO"] = path[len(prefix):]
    environ["SCRIPT_NAME"] = prefix
