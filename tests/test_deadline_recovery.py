"""One slow request does not make a worker refuse its kind (issue 79): a
login that now and then waits 2 s on its database (a row lock) added a
quarter of that to its kind's spread, and four spreads, its whole excess,
to what a login was expected to take: 2.3 s of a 3 s REQUEST_TIMEOUT.
Refusals leave no time, so every login after it that had waited was
refused until the estimate was forgotten a timeout later: 16 to 34
refusals in 12 s for 18 stalls, with 6 clients that the pool serves with
room to spare. Now the spreads add at most the usual time again
(request/deadline.py): none. The in-process rule: test_answer_deadline.py."""

from __future__ import annotations

import pytest

from helpers import app_folder
from load import Load

APP = """\
import hashlib
import itertools
import os
import time

from flask import Flask

app = Flask(__name__)
COUNT = itertools.count(1)


@app.get("/")
def index():
    return "ready"


@app.get("/login")
def login():
    hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 100000)  # a few ms outside Python's lock
    if next(COUNT) % 30 == 0:
        time.sleep(2)  # the database holds a row lock this once
    return f"token {os.urandom(8).hex()}"
"""
TIMEOUT = 3
STALL = 2.0


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    return app_folder(tmp_path_factory.mktemp("stalls"), APP)


def test_a_stalled_request_leaves_its_kind_served_not_refused(containers, app_dir, figure):
    c = containers.serving(env={"REQUEST_TIMEOUT": str(TIMEOUT)}, docker_args=("-v", f"{app_dir}:/app:ro"))
    with Load(c.port, path="/login", connections=6, seconds=12, timeout=10) as load:
        pass
    outcomes = load.outcomes
    statuses = [o.status for o in outcomes]
    stalls = sum(o.status == 200 and o.latency >= STALL for o in outcomes)
    refused = statuses.count(503)
    figure("logins stalled 2 s one in 30, 6 clients, REQUEST_TIMEOUT=3: answers, stalls, 503s",
           f"{len(outcomes)}, {stalls}, {refused}")
    logs = c.logs()
    assert set(statuses) <= {200, 503}, (Load.summary(outcomes), logs[-3000:])
    assert stalls >= 6, Load.summary(outcomes)  # the case arose: stalls in both processes
    # One that waited behind a stall for most of the deadline may still be
    # refused; not a run of them after it.
    assert refused <= stalls // 4, (refused, stalls, logs[-3000:])
