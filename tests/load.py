"""A bounded HTTP/1.1 load generator that remembers every request.

wrk reports totals only, so it cannot say whether an error hit a request sent
before `docker stop` or after it. This client keeps, for every request, when it
was sent, when it ended and how: a status code, or the socket error instead.
It runs N keep-alive connections on one asyncio loop in a background thread,
for a bounded time and/or number of requests, against 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    sent: float  # time.monotonic() when the request was written
    ended: float  # when the response (or the error) arrived
    status: int | None  # HTTP status, or None on a socket error
    error: str | None = None  # e.g. "ConnectionRefusedError", "timeout", "closed"

    @property
    def latency(self) -> float:
        return self.ended - self.sent


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


@dataclass
class Load:
    """Keep-alive load on 127.0.0.1:port until `seconds` pass or
    `max_requests` are made. As a context manager it starts on entry and waits
    for the run to end on exit; stop() cuts it short."""

    port: int
    path: str = "/"
    connections: int = 64
    seconds: float = 20
    max_requests: int | None = None
    timeout: float = 15
    # False: a new connection for every request (Connection: close).
    keep_alive: bool = True
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()
        close = "" if self.keep_alive else "Connection: close\r\n"
        self._request = (f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{close}"
                         "User-Agent: flaskbox-load\r\n\r\n").encode()

    # --- control -------------------------------------------------------
    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> list[Outcome]:
        # Bounded: the run's own limit plus one request timeout.
        self._thread.join(self.seconds + self.timeout + 30)
        assert not self._thread.is_alive(), "load generator did not finish"
        return self.outcomes

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            self.stop()
        self.join()

    # --- results -------------------------------------------------------
    def before(self, moment: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.sent < moment]

    def after(self, moment: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.sent >= moment]

    @staticmethod
    def failures(outcomes: list[Outcome]) -> list[Outcome]:
        """Anything but a 2xx answer."""
        return [o for o in outcomes if o.status is None or not 200 <= o.status < 300]

    @staticmethod
    def summary(outcomes: list[Outcome]) -> str:
        counts: dict[str, int] = {}
        for o in outcomes:
            key = str(o.status) if o.status is not None else o.error or "error"
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{key}: {n}" for key, n in sorted(counts.items()))

    @staticmethod
    def p99_ms(outcomes: list[Outcome]) -> float:
        return percentile([o.latency for o in outcomes if o.status is not None], 99) * 1000

    @staticmethod
    def p50_ms(outcomes: list[Outcome]) -> float:
        return statistics.median(o.latency for o in outcomes if o.status is not None) * 1000

    # --- the client ----------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._deadline = time.monotonic() + self.seconds
        self._budget = self.max_requests
        await asyncio.gather(*(self._connection() for _ in range(self.connections)))

    def _more(self) -> bool:
        if self._stop.is_set() or time.monotonic() >= self._deadline:
            return False
        if self._budget is not None:
            if self._budget <= 0:
                return False
            self._budget -= 1
        return True

    async def _connection(self) -> None:
        reader = writer = None
        while self._more():
            sent = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), self.timeout)
                    sent = time.monotonic()
                writer.write(self._request)
                status, keep = await asyncio.wait_for(self._response(reader), self.timeout)
                self.outcomes.append(Outcome(sent, time.monotonic(), status))
                if not keep:
                    writer.close()
                    writer = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                error = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
                self.outcomes.append(Outcome(sent, time.monotonic(), None, error))
                if writer is not None:
                    writer.close()
                writer = None
                # A refused connect returns at once; pace the retries so a
                # stopped server is not hammered in a tight loop.
                await asyncio.sleep(0.05)
        if writer is not None:
            writer.close()

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        """Reads one response; returns (status, connection reusable)."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        return status, headers.get("connection", "").lower() != "close"
