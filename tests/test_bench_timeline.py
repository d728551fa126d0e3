"""bench/timeline.py (`bench.py --timeline`) finds where a tail comes from:
openloop -T writes each request's arrival on the wall clock and its latency,
and the analysis ties the slow requests to an event they coincide with, or
to a rhythm with no log line of its own, or to neither. Driven against a
small server of the test's own on 127.0.0.1 that stalls on a fixed rhythm,
and on timelines made up to hold one cause each."""

import http.server
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

# A stall longer than the hiccups of a loaded machine (a CI run beside
# other tests had one of 55 ms), so that the slowest requests are the
# stall's, not the machine's.
PERIOD, STALL = 0.25, 0.08


class Rhythmic(QuietKeepAlive):
    """One request at a time (a lock), and a stall of STALL seconds once in
    every PERIOD of the monotonic clock: a watchdog's look, say."""

    lock = threading.Lock()
    last = None

    def do_GET(self):
        with Rhythmic.lock:
            beat = int(time.monotonic() / PERIOD)
            if beat != Rhythmic.last:
                Rhythmic.last = beat
                time.sleep(STALL)
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Rhythmic)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_stall_on_a_rhythm_is_found_at_its_period(server, tmp_path):
    file = tmp_path / "timeline"
    began = time.time()
    got = subprocess.run([str(latency.openloop_binary()), "-p", str(server), "-P", "/", "-r", "300",
                          "-d", "6", "-w", "0.5", "-T", str(file)],
                         capture_output=True, text=True, timeout=60, check=True)
    lines = [line.split() for line in file.read_text().splitlines()]
    rows = [(float(a), int(b)) for a, b in lines]
    # One line per counted request, each arrival on the wall clock within
    # the run, in the schedule's order.
    assert len(rows) == int(got.stdout.split('"requests": ')[1].split(",")[0])
    assert began + 0.5 <= rows[0][0] < rows[-1][0] <= began + 6.6
    assert rows == sorted(rows, key=lambda row: row[0])
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
