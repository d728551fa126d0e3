"""Long connections live long: one HTTP/2 connection carries 10,000 requests,
50 in flight at a time, as load balancers and gRPC-style clients multiplex
them, with no GOAWAY and no request failed or retried; one HTTP/1.1
keep-alive connection carries as many. (nginx's default closed both after
1000 requests.) A connection's life is bounded by time: keepalive_time."""

import http.client

from test_tls import serve_tls

import h2client

REQUESTS = 10_000



def test_one_http2_connection_carries_10000_requests_50_at_a_time(containers, fixture_image, certs, figure):
    c = serve_tls(containers, fixture_image["image"], certs)
    run = h2client.run(c.tls_port, "/", REQUESTS, in_flight=50, timeout=120)
    assert run.goaway is None and not run.closed_early, (run.goaway, run.answered, c.logs()[-2000:])
    assert run.reset == 0 and run.answered == REQUESTS
    assert run.statuses == {"200": REQUESTS} and run.bodies == {b"fixture app\n": REQUESTS}, run.statuses
    figure("HTTP/2, one connection, 50 in flight: requests answered 200, GOAWAYs, seconds",
           f"{run.answered}, 0, {run.seconds:.1f}")


def test_one_http11_keep_alive_connection_carries_as_many(containers, fixture_image, figure):
    c = containers.serving(image=fixture_image["image"])
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    # http.client would open a new connection by itself after a close.
    conn.auto_open = 0
    conn.connect()
    local = conn.sock.getsockname()
    try:
        for number in range(REQUESTS):
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            assert (resp.status, body) == (200, b"fixture app\n"), (number, resp.status, body)
            assert resp.getheader("Connection") != "close", f"closed after request {number + 1}"
        assert conn.sock.getsockname() == local
    finally:
        conn.close()
    figure("HTTP/1.1 keep-alive, one connection: requests answered 200", str(REQUESTS))
