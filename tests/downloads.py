"""Downloads as a client on a slow link makes them, in the background, over
HTTP/1.1 or HTTP/2 (TLS, the `h2` library), with how each ended: whole, or
cut, and how a client could tell (a body short of its Content-Length, a
chunked body with no last chunk, an HTTP/2 stream reset, the connection
closed before the end).

The pace is the client's own: it reads no faster than `rate` bytes a second,
through a small receive buffer (HTTP/1.1), or by granting HTTP/2 flow-control
window only as fast (curl's --limit-rate was measured to let 8 MB "at 1 MB/s"
through in anything from 0.01 to 7.5 s on loopback)."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

MB = 1 << 20
READ = 16384


class Cut(Exception):
    """The body ended before its end: why, as a client sees it."""


@dataclass
class Download:
    url: str
    rate: int = 2 * MB        # bytes a second
    http2: bool = False       # over TLS with ALPN h2 (any certificate)
    head: bytes = b""         # more request header lines, raw (HTTP/1.1), each ending CRLF
    status: int | None = None
    version: str = ""
    answer_headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    ended: str = ""           # "whole", or how it was cut
    _chunks: list[bytes] = field(default_factory=list)
    _received: int = 0

    def start(self) -> Download:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    def received(self) -> int:
        """Bytes of the body so far."""
        return self._received

    def wait(self, timeout: float = 180) -> Download:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.url} still downloading after {timeout} s ({self._received} bytes)")
        return self

    @property
    def body(self) -> bytes:
        return b"".join(self._chunks)

    @property
    def whole(self) -> bool:
        return self.ended == "whole"

    @property
    def cut(self) -> bool:
        return bool(self.ended) and self.ended != "whole"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def __str__(self) -> str:
        return f"{self.url}: {self.ended}, HTTP/{self.version} {self.status}, {self._received} bytes"

    # --- the client's pace ----------------------------------------------
    def _took(self, data: bytes) -> None:
        self._chunks.append(data)
        self._received += len(data)
        ahead = self._received / self.rate - (time.monotonic() - self._started)
        if ahead > 0:
            time.sleep(ahead)

    def _run(self) -> None:
        try:
            (self._http2 if self.http2 else self._http1)()
            self.ended = "whole"
        except Cut as cut:
            self.ended = f"cut: {cut}"
        except (OSError, h2.exceptions.H2Error) as exc:
            self.ended = f"cut: {type(exc).__name__}"

    # --- HTTP/1.1 -------------------------------------------------------
    def _http1(self) -> None:
        parts = urlsplit(self.url)
        sock = socket.socket()
        # A small window, so that the server's side fills up as a slow
        # link's would (set before connecting, to be in effect).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        sock.settimeout(60)
        sock.connect((parts.hostname, parts.port))
        with sock:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
            sock.sendall(request.encode() + self.head + b"\r\n")
            reader = Reader(sock)
            head = reader.until(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            self.version, self.status = "1.1", int(status_line.split()[1])
            for line in lines:
                name, _, value = line.partition(":")
                self.answer_headers[name.strip().lower()] = value.strip()
            if self.answer_headers.get("transfer-encoding") == "chunked":
                self._chunked(reader)
            else:
                self._sized(reader, int(self.answer_headers.get("content-length", "-1")))

    def _sized(self, reader: Reader, length: int) -> None:
        left = length
        while left != 0:
            data = reader.some(min(READ, left) if left > 0 else READ)
            if not data:
                if length < 0:
                    return  # no length: the end of the connection is the end
                raise Cut(f"the connection ended {left} bytes short of the Content-Length")
            self._took(data)
            left -= len(data) if left > 0 else 0

    def _chunked(self, reader: Reader) -> None:
        while True:
            size_line = reader.until(b"\r\n", cut="the connection ended with no last chunk")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n", cut="the connection ended within the last chunk")
                return
            left = size
            while left:
                data = reader.some(min(READ, left))
                if not data:
                    raise Cut("the connection ended with no last chunk")
                self._took(data)
                left -= len(data)
            reader.until(b"\r\n", cut="the connection ended with no last chunk")

    # --- HTTP/2 ---------------------------------------------------------
    def _http2(self) -> None:
        parts = urlsplit(self.url)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection((parts.hostname, parts.port), timeout=60)
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.send_headers(stream, [(":method", "GET"), (":path", target), (":scheme", "https"),
                                       (":authority", parts.netloc)], end_stream=True)
            sock.sendall(conn.data_to_send())
            self.version = "2"
            while True:
                data = sock.recv(65536)
                if not data:
                    raise Cut("the connection closed before the stream ended")
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        headers = {name.decode(): value.decode() for name, value in event.headers}
                        self.status = int(headers.pop(":status"))
                        self.answer_headers.update(headers)
                    elif isinstance(event, h2.events.DataReceived):
                        self._took(event.data)
                        # Window granted only at the client's pace (h2 grants
                        # none once the server has said GOAWAY: the stream
                        # then has what the server already may send).
                        with contextlib.suppress(h2.exceptions.ProtocolError):
                            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        return
                    elif isinstance(event, h2.events.StreamReset):
                        raise Cut(f"the stream was reset ({event.error_code!r})")
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        if event.error_code or event.last_stream_id < stream:
                            raise Cut(f"GOAWAY ({event.error_code!r})")
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    sock.sendall(conn.data_to_send())


class Reader:
    """Bytes from a socket, a line or a piece at a time."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, b""

    def some(self, most: int) -> bytes:
        if not self.buffer:
            self.buffer = self.sock.recv(READ)
        data, self.buffer = self.buffer[:most], self.buffer[most:]
        return data

    def until(self, mark: bytes, cut: str = "the connection ended within the header") -> bytes:
        while mark not in self.buffer:
            data = self.sock.recv(READ)
            if not data:
                raise Cut(cut)
            self.buffer += data
        found, _, self.buffer = self.buffer.partition(mark)
        return found
