"""bench/openloop.c, the open-loop client of `bench.py --latency`, counts
each request's latency from its scheduled arrival: a server that stalls is
charged for every request that arrived during the stall (a closed-loop
client such as wrk stops asking while it waits, and sees one slow request),
and an error answer counts as no answer. Its closed loop (-C, for
`bench.py --pages`) keeps each client's next request waiting on its answer,
and counts only what was answered after the warm-up. Driven against a
small server of the test's own on 127.0.0.1."""

import http.server
import json
import subprocess
import sys
import threading
import time

import pytest
from local_http import QuietKeepAlive

from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))
import latency  # noqa: E402

STALL = 0.3


class Stalling(QuietKeepAlive):
    """HTTP/1.1 keep-alive, one request at a time (a lock) taking `service`
    seconds each, and one stall of STALL seconds for the first request that
    comes after `stall_at`."""

    lock = threading.Lock()
    stall_at = float("inf")
    stalled = False
    status = 200
    service = 0.0

    def do_GET(self):
        with Stalling.lock:
            if not Stalling.stalled and time.monotonic() >= Stalling.stall_at:
                Stalling.stalled = True
                time.sleep(STALL)  # the server stops answering anyone
            time.sleep(Stalling.service)
            body = b"hello\n"
            self.send_response(Stalling.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Stalling.stall_at, Stalling.stalled, Stalling.status, Stalling.service = float("inf"), False, 200, 0.0
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def run(port: int, rate: int, seconds: float, warmup: float) -> dict:
    out = subprocess.run([str(latency.openloop_binary()), "-p", str(port), "-P", "/", "-r", str(rate),
                          "-d", str(seconds), "-w", str(warmup), "-u"],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_a_stall_is_charged_to_every_request_that_arrived_during_it(server):
    rate, seconds, warmup = 200, 2.0, 0.5
    Stalling.stall_at = time.monotonic() + warmup + 1.0
    got = run(server, rate, seconds, warmup)
    assert Stalling.stalled
    # The schedule, not the server, set how many requests went out.
    assert got["requests"] == pytest.approx(rate * seconds, abs=2), got
    assert got["answered"] == got["requests"] and got["status_errors"] == 0, got
    latencies = got["latency_ms"]
    # About STALL x rate = 60 requests arrived during the stall, with waits
    # from 300 ms down to nothing: well over 1 % of the 400 counted waited
    # more than half of it. A closed-loop client would report one slow
    # request in 400: a p99 of a millisecond or two.
    assert latencies["p99"] >= STALL * 1000 / 2, got
    assert latencies["max"] >= STALL * 1000 * 0.9, got
    assert latencies["p50"] < 50, got


def test_an_error_answer_counts_as_no_answer(server):
    Stalling.status = 503
    got = run(server, 100, 1.0, 0.2)
    assert got["status_errors"] == got["requests"] > 0, got
    assert got["latency_ms"]["p50"] is None and got["latency_ms"]["p99"] is None, got


def closed(port: int, clients: int, seconds: float, warmup: float) -> dict:
    out = subprocess.run([str(latency.openloop_binary()), "-p", str(port), "-P", "/", "-C", str(clients),
                          "-d", str(seconds), "-w", str(warmup)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_a_closed_loop_keeps_each_client_waiting_on_its_answer(server):
    # One request at a time, 20 ms each: 4 clients get 50 answers a second
    # between them, each after the other three's (Little's law: 80 ms).
    Stalling.service = 0.02
    got = closed(server, 4, 2.0, 0.5)
    assert got["arrivals"] == "closed" and got["closed_loop_clients"] == 4, got
    assert 25 <= got["achieved_rps"] <= 52, got
    # However slow the machine made the server, 4 waiting clients wait 4
    # services each: the median is the clients over the throughput.
    assert got["latency_ms"]["p50"] == pytest.approx(4 / got["achieved_rps"] * 1000, rel=0.25), got
    assert got["connection_errors"] == got["status_errors"] == 0 and got["connections_opened"] == 4, got
    # The run ends with its clocks: what the 4 clients had out is left.
    assert 0 <= got["in_flight_at_end"] <= 4 and got["elapsed_s"] < 3.0, got


def test_a_closed_loop_counts_nothing_of_its_warm_up(server):
    # The server stalls at once: the first answers come 300 ms late, inside
    # the warm-up, and are not counted; counted from the start, they would
    # be the p99.
    Stalling.stall_at = time.monotonic()
    got = closed(server, 4, 1.0, 0.6)
    assert Stalling.stalled and got["answered"] > 100, got
    # (Any stalled answer counted would be 300 ms or more; the steady ones
    # take up to 4 services, 80 ms, more on a slow host: the bound is the
    # cold run's.)
    assert got["latency_ms"]["max"] < STALL * 1000 * 0.9, got
    Stalling.stall_at, Stalling.stalled = time.monotonic(), False
    cold = closed(server, 4, 1.0, 0.0)
    assert cold["latency_ms"]["max"] >= STALL * 1000 * 0.9, cold


def test_a_sweeps_rounds_are_merged_into_medians_each_round_kept():
    def run(p99, p999, nginx, errors=0):
        return {"latency_ms": {"p50": 1.0, "p99": p99, "p99.9": p999, "max": 50.0}, "status_errors": errors,
                "connection_errors": 0, "unanswered": 0, "cpu_us_per_request": {"nginx": nginx},
                "loadavg": [0.5, 0.6]}

    merged = latency.merged([run(3.0, 9.0, 40.0), run(18.0, 40.0, 44.0, errors=1), run(4.0, 7.0, 42.0)])
    # One round's stall (18 ms) moves the median no further than the next round.
    assert merged["latency_ms"]["p99"] == 4.0 and merged["latency_ms"]["p99.9"] == 9.0
    assert merged["cpu_us_per_request"] == {"nginx": 42.0} and merged["status_errors"] == 1
    assert [r["latency_ms"]["p99"] for r in merged["rounds"]] == [3.0, 18.0, 4.0]
    # A percentile that fell on failed requests in any round stays failed.
    assert latency.merged([run(3.0, None, 40.0), run(3.0, 9.0, 40.0)])["latency_ms"]["p99.9"] is None
