"""Chunked framing for an answer without a Content-Length (request.py
decides which answers; streams.py sends them), so that nginx can tell a
complete stream from one cut short."""

from __future__ import annotations

# Statuses that never carry a body, so are never framed.
NO_BODY = frozenset((204, 304))
# Sent to nginx with every framed response, never to clients: nginx checks
# such a body's length (WHOLE_EVERY) before it logs it as whole.
FRAMED = ("X-Flaskbox-Framed", "1")
# The last chunk of a framed body pads the body to a multiple of this many
# bytes with a chunk extension ("0;xxx...", RFC 9112 7.1.1, which parsers
# skip and nginx does not pass on). nginx counts the bytes it received
# ($upstream_response_length) and logs a framed body whose count is not a
# multiple as cut (nginx.conf, $flaskbox_done): its own completion flag
# says OK for a body the app's side cut short. A cut lands on a multiple by
# chance only, once in WHOLE_EVERY.
WHOLE_EVERY = 1000
_BARE_LAST_CHUNK = len(b"0;x\r\n\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(sent: int) -> bytes:
    """The last chunk after `sent` bytes of chunks: padded so that the body
    is a whole number of WHOLE_EVERY bytes."""
    return b"0;" + b"x" * (1 + (-(sent + _BARE_LAST_CHUNK) % WHOLE_EVERY)) + b"\r\n\r\n"
