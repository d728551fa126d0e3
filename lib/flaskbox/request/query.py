r"""A query string whose raw bytes are not UTF-8 (`GET /?q=\xff`, sent
unencoded), made what a browser would have sent for them: each byte past
ASCII percent-encoded. Werkzeug decodes the raw query as UTF-8, strictly:
left as it is, every route that reads request.args answered such a client
500. Encoded, it reads the bytes as it reads `%FF` (kept as "%FF"). A raw
query that is valid UTF-8 (curl sends 中文 so) is left as it is."""

from __future__ import annotations

from urllib.parse import quote

# Every character a query may carry as it is: only bytes past ASCII change.
KEPT = "".join(chr(code) for code in range(0x21, 0x7F))


def readable(query: str) -> str:
    """The environ's QUERY_STRING (its bytes as latin-1, as PEP 3333 has
    them), for one that is not all ASCII."""
    raw = query.encode("latin-1")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return quote(raw, safe=KEPT)
    return query
