"""How a response leaves the wrapper (serve.py): chunked framing for one
without a Content-Length, so that nginx can tell a complete stream from one
cut short, and the X-Accel-Buffering that tells nginx to pass it on at once.
Reply holds what start_response decided about one response."""

from __future__ import annotations

from dataclasses import dataclass

# Statuses that never carry a body, so are never framed.
NO_BODY = {204, 304}
# Sent to nginx with every framed response, never to clients: nginx checks
# such a body's length (streams.WHOLE_EVERY) before it logs it as whole.
FRAMED = ("X-Flaskbox-Framed", "1")


@dataclass
class Reply:
    """What start_response decided: whether the body is chunked (None until
    it runs; a generator may call it at its first chunk), the 503 sent
    instead when a stream found no slot, the bytes the spool admitted and
    the bytes of chunks sent (by the body or start_response's write())."""

    chunked: bool | None = None
    refused: list[bytes] | None = None
    spooled: int = 0
    framed: int = 0  # bytes of chunks sent so far, framing included


def needs_framing(status: str, headers, method: str) -> bool:
    """A response with a body but no Content-Length (a stream, a generator):
    nginx can tell its end from a cut only if it is chunked."""
    for name, _ in headers:
        lowered = name.lower()
        if lowered == "content-length" or lowered == "transfer-encoding":
            return False
    code = int(status[:3])
    return code >= 200 and code not in NO_BODY and method != "HEAD"


def unbuffered(headers, framed: bool) -> list:
    """X-Accel-Buffering: no for a stream or an event stream, unless the app
    chose for itself (`yes` keeps nginx's buffering for a stream)."""
    event_stream = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "x-accel-buffering":
            return []
        if lowered == "content-type" and value.lower().startswith("text/event-stream"):
            event_stream = True
    return [("X-Accel-Buffering", "no")] if framed or event_stream else []
