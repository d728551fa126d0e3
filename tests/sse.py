"""Clients of streamed responses, on raw sockets so that nothing buffers:
the time each chunk arrives is the time it left nginx.

read_stream() follows one response to its end and says how it ended: with
the last chunk (a complete stream), or cut. Crowd holds many Server-Sent
Event streams at once on one asyncio loop, for a bounded time, and records
the delay of every event (arrival minus the server's `sent` stamp: client
and container share the host's clock)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Chunk:
    arrived: float  # time.time()
    data: bytes


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    chunks: list[Chunk]
    complete: bool  # ended with the last (zero-size) chunk

    def events(self) -> list[tuple[float, dict]]:
        """(arrival, payload) of each `data: {json}` line."""
        found = []
        for chunk in self.chunks:
            for line in chunk.data.split(b"\n"):
                if line.startswith(b"data: {"):
                    found.append((chunk.arrived, json.loads(line[6:])))
        return found


class OpenStream:
    """GET path on a new connection; the status and headers are read at
    once, the chunks as they come: first() waits for the first one, finish()
    for the end."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30,
                 body: bytes | None = None, source: str | None = None):
        """body: POST it (JSON), as an LLM API's client asks for its answer;
        source: the loopback address to connect from (a client of its own)."""
        sent = {**({"Content-Type": "application/json", "Content-Length": str(len(body))} if body else {}),
                **(headers or {})}
        lines = [f"{'POST' if body else 'GET'} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                 *[f"{name}: {value}" for name, value in sent.items()]]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        self.reader = self.sock.makefile("rb", buffering=0)
        self.status = int(self.reader.readline().split()[1])
        self.headers = {}
        while (line := self.reader.readline().strip()):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunks: list[Chunk] = []
        self.complete = False
        self.ended = self.headers.get("transfer-encoding") != "chunked"
        if self.ended:
            body = b"".join(iter(lambda: self.reader.read(65536), b""))
            self.chunks.append(Chunk(time.time(), body))

    def _next(self) -> bool:
        """Reads one chunk; False at the end (the last chunk, or a cut)."""
        if self.ended:
            return False
        try:
            size_line = self.reader.readline()
            size = int(size_line.split(b";")[0], 16) if size_line else None
            if size:
                data = _read_exactly(self.reader, size)
                self.reader.readline()  # the CRLF after each chunk
                self.chunks.append(Chunk(time.time(), data))
                return True
            self.complete = size == 0  # None: closed without the last chunk
        except (ConnectionError, ValueError, TimeoutError):
            pass
        self.ended = True
        return False

    def first(self) -> OpenStream:
        self._next()
        return self

    def finish(self) -> Stream:
        while self._next():
            pass
        self.sock.close()
        return Stream(self.status, self.headers, self.chunks, self.complete)


def read_stream(port: int, path: str, headers: dict[str, str] | None = None,
                timeout: float = 30) -> Stream:
    """GET path; every chunk of a chunked response with its arrival time."""
    return OpenStream(port, path, headers, timeout).finish()


def _read_exactly(reader, size: int) -> bytes:
    parts = []
    while size:
        part = reader.read(size)
        if not part:
            raise ConnectionError("closed inside a chunk")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


@dataclass
class Crowd:
    """`clients` event streams from 127.0.0.1 to `path`, each read for
    `seconds` (then closed), run on a background thread."""

    port: int
    path: str
    clients: int
    seconds: float
    statuses: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Crowd:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(self.seconds + 60)

    async def _run(self) -> None:
        tasks = []
        for number in range(self.clients):
            tasks.append(asyncio.create_task(self._client()))
            if number % 50 == 49:
                await asyncio.sleep(0.02)  # open them over ~0.2 s, not in one burst
        await asyncio.gather(*tasks)

    async def _client(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            self.errors.append(type(exc).__name__)
            return
        try:
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            # A stream may wait in a queue and never start (sync workers, all busy).
            status_line = await asyncio.wait_for(reader.readline(), timeout=self.seconds)
            self.statuses.append(int(status_line.split()[1]))
            events, end = 0, time.monotonic() + self.seconds
            while (left := end - time.monotonic()) > 0:
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=left)
                except TimeoutError:
                    break
                if not line:
                    self.errors.append("closed early")
                    break
                if line.startswith(b"data: {"):
                    self.delays.append(time.time() - json.loads(line[6:])["sent"])
                    events += 1
            self.counts.append(events)
        except (OSError, ValueError, IndexError, TimeoutError) as exc:
            self.errors.append(type(exc).__name__)
        finally:
            writer.close()
