"""How a response leaves the wrapper (serve.py): chunked framing for one
without a Content-Length, so that nginx can tell a complete stream from one
cut short, and the X-Accel-Buffering that tells nginx to pass it on at once.
Reply holds what start_response decided about one response, and frames its
chunks."""

from __future__ import annotations

from dataclasses import dataclass

# Statuses that never carry a body, so are never framed.
NO_BODY = {204, 304}
# Sent to nginx with every framed response, never to clients: nginx checks
# such a body's length (WHOLE_EVERY) before it logs it as whole.
FRAMED = ("X-Flaskbox-Framed", "1")
# The last chunk of a framed body pads the body to a multiple of this many
# bytes with a chunk extension ("0;xxx...", RFC 9112 7.1.1, which parsers
# skip and nginx does not pass on). nginx counts the bytes it received
# ($upstream_response_length) and logs a framed body whose count is not a
# multiple as cut (nginx.conf, $flaskbox_whole): its own completion flag
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


@dataclass
class Reply:
    """What start_response decided: whether the body is chunked (None until
    it runs; a generator may call it at its first chunk), the 503 sent
    instead when a stream found no slot, the bytes the spool admitted and
    the bytes of chunks sent (by the body or start_response's write())."""

    chunked: bool | None = None
    # text/event-stream: the one kind of stream flaskbox may end early, with
    # its last chunk (a stop, a reload, gevent's stream limits), since
    # EventSource reconnects; any other is never ended early but cut.
    event_stream: bool = False
    refused: list[bytes] | None = None
    spooled: int = 0
    framed: int = 0  # bytes of chunks sent so far, framing included

    def frame(self, data: bytes) -> bytes:
        """`data` as a chunk, counted toward the body's length."""
        framed = chunk(data)
        self.framed += len(framed)
        return framed

    def last_chunk(self) -> bytes:
        return last_chunk(self.framed)


def scan(headers) -> tuple[bool, bool, str | None, str | None]:
    """One pass over an answer's headers, for what the wrapper decides per
    answer: (whether it has a Content-Length or a Transfer-Encoding, whether
    it is an event stream, its X-Accel-Buffering or None, its Content-Length
    or None), read once: this runs on every answer."""
    sized = event = False
    accel = length = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            sized, length = True, value
        elif lowered == "transfer-encoding":
            sized = True
        elif lowered == "content-type":
            event = event or value.lower().startswith("text/event-stream")
        elif lowered == "x-accel-buffering":
            accel = value
    return sized, event, accel, length


def frames(status: str, method: str, sized: bool) -> bool:
    """needs_framing, given what scan() found."""
    if sized:
        return False
    code = int(status[:3])
    return code >= 200 and code not in NO_BODY and method != "HEAD"


def unbuffered_for(accel: str | None, framed: bool, event: bool) -> list:
    """X-Accel-Buffering: no for a stream or an event stream, unless the app
    chose for itself (accel, its own X-Accel-Buffering: `yes` keeps nginx's
    buffering for a stream)."""
    return [("X-Accel-Buffering", "no")] if accel is None and (framed or event) else []


# The same questions asked of the headers alone, each by way of scan().

def needs_framing(status: str, headers, method: str) -> bool:
    """A response with a body but no Content-Length (a stream, a generator):
    nginx can tell its end from a cut only if it is chunked."""
    return frames(status, method, scan(headers)[0])


def is_event_stream(headers) -> bool:
    return scan(headers)[1]


def unbuffered(headers, framed: bool) -> list:
    _, event, accel, _ = scan(headers)
    return unbuffered_for(accel, framed, event)
