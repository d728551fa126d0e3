"""A revalidation the app's own ETag matches is answered 304, whatever the
app's handler compares (request.py asks, from start_response).

RFC 9110 13.1.2 has If-None-Match compare weakly: W/"a" matches "a". nginx's
gzip turns a strong ETag it compresses into a weak one, and the browser
sends that back; a handler that compares byte for byte (WhiteNoise's, many
apps' own) then sent the whole file again, 200, at every revalidation (11
of SearXNG's 16 theme files, 159 KB, where 304s were due). Flask's
send_file compares weakly already: its 304 passes through untouched.

Asked only of a 200 to a request that sent If-None-Match: any other
request pays one dict lookup. Never for:
- another status: an error, a redirect, a 206 stay what the app said;
- a method other than GET and HEAD, or a request with a body (RFC 9110
  13.1.2: another method's If-None-Match asks for 412, not 304);
- an answer with Cache-Control: no-store: the client has no stored copy
  the 304 could refresh, and the app asked for its answer to be sent each
  time;
- an answer with no ETag, with two, or with one that is not an
  entity-tag (nginx's gzip drops an unquoted one: nothing to compare);
- the second start_response of an app that failed (exc_info).

The 304 carries the 200's headers but the body's own (nginx's own 304s
drop the same; RFC 9110 15.4.5): ETag, Cache-Control, Expires, Vary (the
one start_response settled for the 200), Last-Modified and the rest stay.
Its ETag is the form the client holds: the client's copy is what the 304
refreshes, and a cache updates a stored answer only from a 304 whose
strong ETag is that answer's own (RFC 9111 4.3.4). The app's body is
closed unread (body.rarer, as for any answer the wrapper replaces).
"""

from __future__ import annotations

import re

NOT_MODIFIED = "304 Not Modified"
# The body's own headers, which a 304 has no body for.
BODY_HEADERS = frozenset(("content-length", "content-type", "content-encoding", "content-range",
                          "content-language", "content-md5", "transfer-encoding", "accept-ranges"))
# One entity-tag of If-None-Match's list: a quoted tag (commas are allowed
# inside one), weak or not.
ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')


class Empty:
    """The body that replaces the app's (request.instead: body.rarer and
    streams.flow send its body and close the app's)."""

    __slots__ = ()
    body = b""


EMPTY = Empty()


def unchanged(request, headers: list, exc_info) -> bool:
    """A 200's headers (Vary settled): True once the 304 has been handed to
    uWSGI instead, when the request's If-None-Match holds the app's ETag."""
    environ = request.environ
    if exc_info is not None or request.rare or request.body_left or environ["REQUEST_METHOD"] not in (
            "GET", "HEAD"):
        return False
    etag = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "etag":
            if etag is not None:
                return False  # which one the client holds is not ours to guess
            etag = value.strip()
        elif lowered == "cache-control" and "no-store" in value.lower():
            return False
    if etag is None:
        return False
    held = matching(environ["HTTP_IF_NONE_MATCH"], etag)
    if held is None:
        return False
    request.rare, request.instead, request.chunked = True, EMPTY, False
    request.respond(NOT_MODIFIED, [(name, held if name.lower() == "etag" else value)
                                   for name, value in headers if name.lower() not in BODY_HEADERS])
    return True


def matching(if_none_match: str, etag: str) -> str | None:
    """The ETag for a 304 when If-None-Match matches `etag` weakly (RFC
    9110 8.8.3.2: W/ aside, the same quoted tag; "*": any): the form the
    client sent, which is the app's own unless something between (nginx's
    gzip) made it weak. None: no match, or `etag` is no entity-tag."""
    weak = etag.startswith("W/")
    opaque = etag[2:] if weak else etag
    if len(opaque) < 2 or opaque[0] != '"' or opaque[-1] != '"' or '"' in opaque[1:-1]:
        return None
    if if_none_match.strip() == "*":
        return etag
    forms = {bool(w) for w, tag in ENTITY_TAG.findall(if_none_match) if tag == opaque}
    if not forms:
        return None
    return etag if weak or False in forms else "W/" + opaque
