"""Steady load from inside a network namespace, every request checked for
its own answer: the clients of test_swarm.py and test_swarm_nodes.py."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from engines import enter_netns, poll

# Client threads and the pause between two requests of one: about 150
# requests a second, each on a new connection, a steady load that leaves the
# 2 CPUs room for four tasks starting and stopping.
CLIENTS = 4
PAUSE = 0.02
# Requests answered after an event (the swarm done updating, a node gone):
# the tasks left carry this many alone, proving they serve.
AFTER = 100


@dataclass
class Result:
    sent: float
    status: int | None
    error: str | None = None
    took: float = 0.0


@dataclass
class Traffic:
    """CLIENTS threads in a network namespace, each sending
    GET /api/hello?name=TOKEN on a new connection, then pausing PAUSE. A
    request counts as served only with a 200 whose body greets its own
    token. At most `seconds` long, whatever happens."""

    netns_path: str
    port: int
    seconds: float = 300
    results: list[Result] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Traffic:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "a client did not finish"

    def since(self, moment: float) -> list[Result]:
        with self._lock:
            return [r for r in self.results if r.sent >= moment]

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status != 200]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            key = str(r.status) if r.status is not None else r.error or "error"
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))

    def _client(self) -> None:
        enter_netns(self.netns_path)
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            result = self._request()
            with self._lock:
                self.results.append(result)
            time.sleep(PAUSE)

    def _request(self) -> Result:
        result = self._exchange()
        result.took = time.monotonic() - result.sent
        return result

    def _exchange(self) -> Result:
        token = uuid.uuid4().hex
        sent = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", f"/api/hello?name={token}", headers={"Connection": "close"})
            response = conn.getresponse()
            body = response.read()
            if response.status == 200 and json.loads(body) != {"message": f"Hello, {token}!"}:
                return Result(sent, None, f"wrong body {body[:80]!r}")
            return Result(sent, response.status)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return Result(sent, None, type(exc).__name__)
        finally:
            conn.close()


def served_since(traffic: Traffic, moment: float, what: str = "") -> None:
    """Waits until AFTER requests sent from moment on were answered."""
    poll(lambda: len([r for r in traffic.since(moment) if r.status == 200]) >= AFTER,
         f"{AFTER} requests answered {what}".rstrip(), 60, interval=0.1, explain=traffic.summary)
