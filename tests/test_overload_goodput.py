"""Under overload, the work let in finishes (issue 69): a login that
hashes its password outside Python's lock (0.25 s of PBKDF2 in OpenSSL),
far more clients than the CPUs can
serve, two busy loops beside the container as a shared host has. Before,
every request was let in at once, each slowed by all the others past
REQUEST_TIMEOUT: 445 answers of 445 were 504s, and a stop under that load
cut requests that had run 13 s. Now each worker lets in about two, as
their time against their time alone says (request/admission.py), and a
request that could no longer be answered in
time gets 503 when a worker takes it (request/deadline.py): every answer
that comes is whole and in time, a 504 is rare (few_timeouts), and a stop
loses nothing."""

from __future__ import annotations

import collections
import http.client
import re
import threading
import time

import pytest

from helpers import Neighbours, app_folder, docker

APP = """\
import hashlib
import os
import time

from flask import Flask

app = Flask(__name__)
SALT = b"flaskbox-test-salt"


def rounds(seconds: float = 0.25) -> int:
    # As many rounds as take `seconds` on this host as it is now, its
    # neighbours running (measured once, in the master, at import): a host
    # three times as fast otherwise served 24 clients within the deadline,
    # with no overload to refuse; one whose neighbours left the container a
    # fifth of a CPU took near the deadline for a login alone, and no rule
    # could tell a login that would finish from one that would not.
    began = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"secret", SALT, 50000)
    return max(5000, int(50000 * seconds / max(time.perf_counter() - began, 1e-6)))


ROUNDS = int(os.environ.get("LOGIN_ROUNDS") or rounds())
EXPECTED = hashlib.pbkdf2_hmac("sha256", b"secret", SALT, ROUNDS)


@app.get("/")
def index():
    return "ready"


@app.get("/login")
def login():
    # A password check as Django's PBKDF2 makes it: OpenSSL computes
    # outside Python's lock, on the request's own thread.
    if hashlib.pbkdf2_hmac("sha256", b"secret", SALT, ROUNDS) != EXPECTED:
        return "wrong", 401
    return f"token {os.urandom(8).hex()}"
"""
TIMEOUT = 3
CLIENTS = 24
# A login's 200 in nginx's access log, and its rt=.
SERVED = re.compile(r'"GET /login HTTP/1\.1" 200 .*? rt=([0-9.]+)')


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    return app_folder(tmp_path_factory.mktemp("overload"), APP)


class Clients:
    """CLIENTS keep-alive clients logging in again and again until told to
    stop: (status, seconds, body) of each answer, or the error instead."""

    def __init__(self, port: int):
        self.port, self.answers, self.stopped = port, [], threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def run(self) -> None:
        conn = None
        while not self.stopped.is_set():
            begun = time.monotonic()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", "/login")
                resp = conn.getresponse()
                self.answers.append((resp.status, time.monotonic() - begun, resp.read()))
            except (OSError, http.client.HTTPException) as exc:
                self.answers.append((type(exc).__name__, time.monotonic() - begun, b""))
                conn = None
                # Refused once nginx has closed its port at a stop: retry as a
                # client would, not in a loop that made this process a third
                # busy neighbour (100,000 connects in 3 s starved the logins
                # still in flight past REQUEST_TIMEOUT: 504s in 3 runs of 6).
                self.stopped.wait(0.05)

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(60)


def logins_served(container) -> list[float]:
    """rt= of each login nginx answered with a 200."""
    return [float(rt) for rt in SERVED.findall("\n".join(container.stdout_lines()))]


def gate_limits(container) -> list[int]:
    out = container.exec("bash", "-c", "cat /tmp/flaskbox/uwsgi/g*/gate-[0-9]* 2>/dev/null").stdout
    return [int(line.split()[0]) for line in out.splitlines()]


# A shared host's two busy loops, and a busy container besides (whose
# cgroup takes its share of the CPUs: the pool's processes then compute
# little, as if their requests waited on a database, which one rule read
# so and let up to 10 logins in a worker where one or two fit: 2 good
# answers in 15 s, the rest 503 and 504), or a CPU quota of one (the
# container's CPUs read as one: the pool's shape follows).
HOSTS = {"beside two busy loops": ((), True, False),
         "beside two busy loops and a busy container": ((), True, True),
         "under a quota of one CPU": (("--cpus", "1"), False, False)}


@pytest.mark.parametrize("host", HOSTS)
def test_logins_past_what_the_cpus_can_run_are_refused_not_timed_out(containers, app_dir, figure, host):
    quota, loops, busy_container = HOSTS[host]
    with Neighbours(2 if loops else 0, containers if busy_container else None):
        # Started beside its neighbours: the login's price is set by them too.
        c = containers.serving(env={"REQUEST_TIMEOUT": str(TIMEOUT)},
                               docker_args=("-v", f"{app_dir}:/app:ro", *quota))
        clients = Clients(c.port)
        try:
            # The pool's decision: each worker lets in about two logins at
            # once, as they share the CPUs and each takes twice its time
            # alone (request/admission.py).
            c.wait_until(lambda: (limits := gate_limits(c)) and max(limits) <= 3,
                         "every worker's limit lowered", timeout=20)
            time.sleep(8)  # the load goes on: what came of it is judged below
        finally:
            clients.stop()
    statuses = [status for status, _, _ in clients.answers]
    logs = c.logs()
    good = [(seconds, body) for status, seconds, body in clients.answers if status == 200]
    # Every login that was answered was answered within its deadline: as
    # nginx timed it (rt=, from the request's first byte to the answer's
    # last), since the clients' own clock, 24 threads beside two busy loops,
    # adds their stalls; theirs only proves that none hung.
    # (The last lines reach docker's log a moment after their answers.)
    served = c.wait_until(lambda: len(rts := logins_served(c)) >= len(good) and rts,
                          "every good answer's access line", timeout=10)
    figure(f"logins {host}, REQUEST_TIMEOUT=3: 200s, 503s, 504s, slowest 200 (nginx rt), s",
           f"{len(good)}, {statuses.count(503)}, {statuses.count(504)}, {max(served):.2f}")
    assert set(statuses) <= {200, 503, 504}, (sorted(set(map(str, statuses))), logs[-3000:])
    assert len(good) >= 10 and all(body.startswith(b"token ") for _, body in good), len(good)
    assert max(served) < TIMEOUT + 0.5, sorted(served)[-5:]
    assert max(seconds for seconds, _ in good) < 2 * TIMEOUT, sorted(seconds for seconds, _ in good)[-5:]
    assert "could not have started within REQUEST_TIMEOUT" in logs, logs[-3000:]
    assert few_timeouts(statuses), (statuses.count(504), len(good), logs[-3000:])


def few_timeouts(statuses: list) -> bool:
    """The decision, not the clock (issue 69): logins past what the CPUs
    can run are refused before they run, where before every one of 445
    ran past the deadline. On a shared host a neighbour can still slow the
    machine after a login was let in: at most one in twenty good answers
    may be a 504 (measured: none in 15 runs of either host; judged by two
    spreads instead of four, 17 for 343 good answers under the quota)."""
    return statuses.count(504) <= max(1, statuses.count(200) // 20)


def test_a_stop_under_that_load_loses_nothing(containers, app_dir, figure):
    c = containers.serving(env={"REQUEST_TIMEOUT": str(TIMEOUT)}, docker_args=("-v", f"{app_dir}:/app:ro"))
    with Neighbours():
        clients = Clients(c.port)
        try:
            c.wait_until(lambda: sum(status == 200 for status, _, _ in clients.answers) >= 8,
                         "logins answered", timeout=30)
            stopped = time.monotonic()
            docker("stop", c.name, timeout=60)
            took = time.monotonic() - stopped
        finally:
            clients.stop()
    logs = c.logs()
    figure("docker stop under PBKDF2 logins beside two busy loops: exit code, seconds",
           f"{c.exit_code()}, {took:.1f}")
    # Nothing let in ran near its budget: the stop ends within seconds,
    # every request it held finished, and no process was killed.
    assert c.exit_code() == 0 and took < 8, (c.exit_code(), took, logs[-3000:])
    said = [line for line in logs.splitlines() if line.startswith("flaskbox:") and "refused" not in line]
    assert not [line for line in said if "past their budget" in line or "killing" in line
                or "slow to stop" in line], said
    # No false alarm from uWSGI as its sockets close.
    assert "epoll_ctl" not in logs, logs[-3000:]
    statuses = [status for status, _, _ in clients.answers]
    late = [line for line in said if "ran past" in line]
    assert few_timeouts(statuses), (collections.Counter(statuses), late, logs[-2000:])
