"""A quiet HTTP/1.1 keep-alive handler for the small servers some tests
run on 127.0.0.1 (the benchmark client's tests): no log line per request,
and no Nagle delay, which would add 40 ms to the answers a test times."""

import http.server
import socket


class QuietKeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass
