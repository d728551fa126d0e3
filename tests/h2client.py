"""A real HTTP/2 client on one TLS connection (the `h2` library, hyper's
protocol engine, over the standard library's ssl): keeps a number of
requests in flight at once, as load balancers and gRPC-style clients
multiplex them, and reports every answer and whether the server sent GOAWAY.
Nothing reconnects: what one connection carried is what the run shows."""

from __future__ import annotations

import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events


@dataclass
class Run:
    statuses: Counter = field(default_factory=Counter)
    answered: int = 0
    reset: int = 0
    goaway: h2.events.ConnectionTerminated | None = None
    closed_early: bool = False
    seconds: float = 0.0
    bodies: Counter = field(default_factory=Counter)  # body -> how many times


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context


def run(port: int, path: str, total: int, in_flight: int, timeout: float = 60) -> Run:
    """GET `path` `total` times on one HTTP/2 connection, `in_flight` at once."""
    result = Run()
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with unverified().wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        bodies: dict[int, list[bytes]] = {}
        sent, started = 0, time.monotonic()
        while result.answered + result.reset < total and result.goaway is None:
            while len(bodies) < in_flight and sent < total:
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, [(":method", "GET"), (":path", path), (":scheme", "https"),
                                           (":authority", f"127.0.0.1:{port}")], end_stream=True)
                bodies[stream] = []
                sent += 1
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)
            if not data:
                result.closed_early = True
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    result.statuses[dict(event.headers)[b":status"].decode()] += 1
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id].append(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    result.answered += 1
                    result.bodies[b"".join(bodies.pop(event.stream_id))] += 1
                elif isinstance(event, h2.events.StreamReset):
                    result.reset += 1
                    bodies.pop(event.stream_id, None)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    result.goaway = event
        result.seconds = time.monotonic() - started
        conn.close_connection()
        sock.sendall(conn.data_to_send())
    return result
