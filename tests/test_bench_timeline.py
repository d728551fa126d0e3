"""bench/timeline.py (`bench.py --timeline`) finds where a tail comes from:
openloop -T writes each request's arrival on the wall clock and its latency,
and the analysis ties the slow requests to an event they coincide with, or
to a rhythm with no log line of its own, or to neither. openloop -T is
driven against a small server of the test's own on 127.0.0.1; the analysis
is given timelines made up to hold one cause each (a server that stalls on
a rhythm among them, its stalls computed, not slept: a real one measured
the machine's load as much as its rhythm, beside other tests)."""

import http.server
import json
import random
import subprocess
import sys
import threading
import time

import pytest
from local_http import QuietKeepAlive

from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))
import latency  # noqa: E402
import timeline  # noqa: E402


class Answering(QuietKeepAlive):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_openloop_writes_each_counted_requests_arrival_and_latency(server, tmp_path):
    file = tmp_path / "timeline"
    began = time.time()
    got = subprocess.run([str(latency.openloop_binary()), "-p", str(server), "-P", "/", "-r", "300",
                          "-d", "2", "-w", "0.5", "-T", str(file)],
                         capture_output=True, text=True, timeout=60, check=True)
    ended = time.time()
    summary = json.loads(got.stdout)
    rows = [(float(a), int(b)) for a, b in (line.split() for line in file.read_text().splitlines())]
    # One line per counted request, the unanswered ones at -1; each
    # arrival as scheduled (after the warm-up, within the 2 s counted), on
    # the wall clock within the run, in the schedule's order. (However long
    # a loaded machine took to start openloop or to answer.)
    assert len(rows) == summary["requests"] > 0
    assert sum(latency >= 0 for _, latency in rows) == summary["answered"] > 0, summary
    assert began + 0.5 <= rows[0][0] < rows[-1][0] < ended
    assert rows[-1][0] - rows[0][0] <= 2
    assert rows == sorted(rows, key=lambda row: row[0])


# The stalling server: one request at a time, and a stall of STALL seconds
# once in every PERIOD (a watchdog's look, say), longer than the hiccups of
# a loaded machine (a CI run beside other tests had one of 55 ms).
PERIOD, STALL = 0.25, 0.08


def stalling_server(rate: float, seconds: float, seed: int) -> list[tuple[float, int]]:
    """The timeline openloop would write of a server that stalls for STALL
    at the first request of each PERIOD, answers in about 0.3 ms, and one
    request at a time: Poisson arrivals at `rate` for `seconds`, each
    request's latency from its arrival (its wait behind the stall and the
    requests before it included). The machine's own hiccups are there too: 1 %
    of requests 20 to 60 ms late, at random."""
    rng = random.Random(seed)
    rows, free, beat, arrival = [], 0.0, None, 0.0
    while (arrival := arrival + rng.expovariate(rate)) < seconds:
        start = max(arrival, free)
        if int(start / PERIOD) != beat:
            beat = int(start / PERIOD)
            start += STALL
        free = start + rng.uniform(0.0002, 0.0004)
        late = rng.uniform(0.020, 0.060) if rng.random() < 0.01 else 0.0
        rows.append((1_800_000_000 + arrival, round((free - arrival + late) * 1e6)))
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_a_stall_on_a_rhythm_is_found_at_its_period(seed):
    rows = stalling_server(300, 6, seed)
    found = timeline.analyse(rows, {"health check": [], "worker respawned": []})
    # The slow requests arrive at one phase of the stall's rhythm: its
    # period (or a whole fraction of it, which a rhythm also fills).
    rhythm = found["their rhythm, s (None: none above chance)"]
    assert rhythm is not None, found
    assert any(abs(rhythm - PERIOD / k) < 0.01 for k in (1, 2, 3)), found


def made_up(slow_at: list[float]) -> list[tuple[float, int]]:
    """10 s of requests at 200/s, 0.5 ms each, and 12 ms for those at `slow_at`."""
    rng = random.Random(7)
    rows = [(1000 + i / 200 + rng.random() / 400, 500) for i in range(2000)]
    rows += [(1000 + t, 12000) for t in slow_at]
    return sorted(rows)


def test_slow_requests_during_an_event_are_tied_to_it():
    rows = made_up([5.0 + i * 0.002 for i in range(30)])
    found = timeline.analyse(rows, {"health check": [(1005.0, 1005.04)],
                                    "worker respawned": [(1002.0, 1002.0)]})
    check = found["events"]["health check"]
    assert check["slow requests during one"] == found["slowest 1 %"] == 20, found
    assert check["tied"], check
    # A respawn the slow requests came nowhere near.
    respawn = found["events"]["worker respawned"]
    assert respawn["slow requests during one"] == 0 and not respawn["tied"], found


def test_slow_requests_at_random_have_no_rhythm_or_event():
    rng = random.Random(11)
    rows = made_up([rng.uniform(0, 10) for _ in range(40)])
    found = timeline.analyse(rows, {"health check": [(1003.0, 1003.04)], "worker respawned": []})
    assert found["their rhythm, s (None: none above chance)"] is None, found
    assert not found["events"]["health check"]["tied"], found
