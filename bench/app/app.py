"""The one app every contender serves: hello world, a rendered template, a
realistic page (the template after a 1 ms wait standing in for a database
call), the same after a 5 ms wait (a slower query), a large download made in
memory, a 100 KB static file (written at image build time), Server-Sent
Events (an event every `every` seconds, stamped with the server's clock),
pages shaped like the ones real apps compute (issue 61): a large list page
behind a password check, and a short wait then a list page; and issue 69's:
a login's password check outside Python's lock, a 600-row list behind a
short one, and a metasearch whose engines run on threads of their own; and
issue 79's: a short login that now and then waits on a row lock,
Keystone's token and three calls behind its policy engine, and CKAN's
dataset page (their work is keystone_like.py's and ckan_like.py's)."""

import datetime
import hashlib
import itertools
import json
import os
import random
import sys
import threading
import time

import ckan_like
import keystone_like
import per_process
from flask import Flask, Response, abort, render_template, request
from werkzeug.security import check_password_hash, generate_password_hash

app = Flask(__name__)

# --pages measures a pool with Python's switch interval raised (how long a
# thread may run before it must offer the GIL to another: 5 ms by default).
# Set here, at import, so that it holds in every worker whichever way the
# server loads the app.
if os.environ.get("BENCH_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))

# --pages --ballast: a large app's import (its models, its tables, its
# plugins), this many MB of Python objects made before the fork, so that the
# pool's memory after a load says what the workers copied of it.
BALLAST = [{"id": number, "name": f"row {number}", "tags": [number, -number]}
           for number in range(int(os.environ.get("BENCH_BALLAST_MB", "0")) * 2550)]

# Basic auth as Airflow's webserver checks it: Werkzeug's scrypt hash of the
# password, checked on every request. n = 2**13 (8 MB, some 15 ms here) is a
# quarter of Werkzeug's default cost: modest, as the issue asks.
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = generate_password_hash(PASSWORD, method="scrypt:8192:8:1")


def records(count: int) -> list[dict]:
    """The rows of a list page, the same on every server (a fixed seed)."""
    draw = random.Random(61)
    start = datetime.datetime(2026, 1, 1)
    states = ("success", "running", "failed", "queued", "skipped")
    return [{
        "id": number, "name": f"pipeline_{number:04d}_{draw.choice(('etl', 'report', 'sync', 'ml'))}",
        "owner": draw.choice(("data-eng", "analytics", "ml <ops>", "platform & infra")),
        "tags": draw.sample(("daily", "hourly", "Finance", "Marketing", "PII", "export", "backfill"), 3),
        "runs": {state: draw.randrange(0, 400) for state in states},
        "schedule": draw.choice(("@daily", "@hourly", "0 */6 * * *", "30 2 * * 1-5")),
        "last_run": start + datetime.timedelta(minutes=draw.randrange(0, 500000)),
        "duration": draw.uniform(0.5, 3600), "paused": draw.random() < 0.2,
        "description": " ".join(draw.choice(("loads", "the", "daily", "orders", "into", "warehouse",
                                             "and", "checks", "their", "totals")) for _ in range(20)),
    } for number in range(count)]


RECORDS = records(400)
COLUMNS = ("name", "owner", "runs", "schedule", "last run", "duration", "description", "")
# /list's 600 rows (the first 400 are RECORDS': the draws go in order).
LIST_RECORDS = records(600)
# A PBKDF2 check as Django's default makes it (390,000 rounds of SHA-256:
# some 0.27 s of CPU here, in OpenSSL, outside Python's lock), and a short
# one (15,000 rounds, some 10 ms) for a list page behind a login.
SALT = b"flaskbox-bench-salt"
LOGIN_ROUNDS, LIST_ROUNDS = 390_000, 15_000
LOGIN_HASH = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, LOGIN_ROUNDS)
LIST_HASH = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, LIST_ROUNDS)


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/page")
def page():
    return render_template("page.html", title="Benchmark", items=[f"item {i}" for i in range(20)])


@app.get("/realistic")
def realistic():
    time.sleep(0.001)  # a database query's round trip
    return page()


@app.get("/wait")
def wait():
    time.sleep(0.005)  # a query that takes 5 ms
    return page()


@app.get("/download")
def download():
    # Random bytes with their digest: a client that got all of them, in
    # order, computes the same.
    data = os.urandom(int(request.args.get("mb", 24)) << 20)
    return Response(data, mimetype="application/octet-stream",
                    headers={"X-Sha256": hashlib.sha256(data).hexdigest()})


@app.get("/events")
def events():
    count, every = int(request.args.get("count", 10)), float(request.args.get("every", 1))

    def generate():
        for number in range(count):
            yield f"data: {json.dumps({'n': number, 'sent': time.time()})}\n\n"
            time.sleep(every)

    return Response(generate(), mimetype="text/event-stream")


@app.get("/heavy")
def heavy():
    """A page that computes (Airflow's DAG list behind basic auth): the
    password's scrypt hash checked, then 300 rows rendered: some 40 ms of
    CPU, half of it Python holding the GIL (the hash releases it)."""
    if not check_password_hash(PASSWORD_HASH, PASSWORD):
        abort(401)
    return render_template("rows.html", title="Pipelines", rows=RECORDS[:300], total=len(RECORDS),
                           columns=COLUMNS)


@app.get("/mixed")
def mixed():
    """A page that waits a little and then computes (a search: a backend's
    answer, then the results page): a 3 ms wait, then 160 rows rendered,
    some 12 ms of Python."""
    time.sleep(0.003)  # the backend's answer
    return render_template("rows.html", title="Results", rows=RECORDS[:160], total=len(RECORDS),
                           columns=COLUMNS)


@app.get("/login")
def login():
    """A login (Keystone's token, Django's password check): 0.27 s of CPU
    in C, outside Python's lock, where the lock probe cannot see it."""
    if hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, LOGIN_ROUNDS) != LOGIN_HASH:
        abort(401)
    return {"token": os.urandom(16).hex()}


# /stalling: one request in STALL_EVERY of each process waits STALL_SECONDS
# outside the process (a row lock another transaction holds).
STALL_EVERY, STALL_SECONDS = 30, 2.0
STALLS = itertools.count(1)


@app.get("/stalling")
def stalling():
    """A short login (the list's 10 ms check, outside the lock) whose
    database now and then holds it on a row lock: a wait that computes
    nothing, which a pool must not read as its CPUs being full."""
    if hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, LIST_ROUNDS) != LIST_HASH:
        abort(401)
    if next(STALLS) % STALL_EVERY == 0:
        time.sleep(STALL_SECONDS)
    return {"token": os.urandom(16).hex()}


@app.get("/list")
def list_page():
    """A list behind a login (issue 69): a short password check outside
    the lock, then 600 rows rendered: some 30-60 ms of CPU. X-Handler says
    the handler's own seconds, its thread's CPU and the worker's pid
    (bench --tail splits a request's time with them)."""
    began, cpu = time.perf_counter(), time.thread_time()
    if hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, LIST_ROUNDS) != LIST_HASH:
        abort(401)
    page = render_template("rows.html", title="Pipelines", rows=LIST_RECORDS, total=len(LIST_RECORDS),
                           columns=COLUMNS)
    took = f"{time.perf_counter() - began:.6f} {time.thread_time() - cpu:.6f} {os.getpid()}"
    return page, {"X-Handler": took}


# /search: a metasearch (SearXNG's shape): each engine asked on a thread of
# its own, its answer waited for over the network, then parsed; the
# handler waits for all of them up to the engines' deadline, and a search
# whose engines ran past it comes back without their results.
ENGINES, ENGINE_DEADLINE = 4, 2.0
SEARCH_TEXT = json.dumps([{"title": f"result {n}", "url": f"https://example.org/{n}",
                           "content": "lorem " * 30} for n in range(40)])


def engine(number: int, query: str, results: list) -> None:
    time.sleep(0.02 + 0.03 * number)  # its answer, over the network
    for _ in range(8):  # then parsed (some 5 ms of Python holding its lock, as lxml's results are walked)
        parsed = json.loads(SEARCH_TEXT)
        hits = [{**hit, "engine": number, "query": query, "score": len(hit["content"].split()) / (1 + index)}
                for index, hit in enumerate(parsed) for _ in range(4)]
    results.extend(hits)


@app.get("/search")
def search():
    query, results = request.args.get("q", "flaskbox"), []
    engines = [threading.Thread(target=engine, args=(number, query, results), daemon=True)
               for number in range(ENGINES)]
    for thread in engines:
        thread.start()
    deadline = time.monotonic() + ENGINE_DEADLINE
    for thread in engines:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = sum(thread.is_alive() for thread in engines)
    ranked = sorted(results, key=lambda hit: -hit["score"])[:20]
    return render_template("page.html", title=f"{len(ranked)} results, {late} engines late",
                           items=[hit["title"] for hit in ranked])


@app.get("/detail/<name>")
def detail(name):
    """What the list pages link to (url_for builds their links)."""
    return name


@app.get("/interval")
def interval():
    """The switch interval this worker runs with: --pages checks that its
    variant took."""
    return str(sys.getswitchinterval())


# --- bench --apps (issue 79): pages shaped like two large apps; X-Setup says
# the worker's pid and the CPU seconds its per-process set-up took.
@app.post("/ks/token")
def ks_token():
    """Keystone's POST /v3/auth/tokens: a password check outside the lock."""
    token = keystone_like.issue_token(request.get_json(silent=True) or {})
    if token is None:
        abort(401)
    return {"token": {"methods": ["password"], "project": "p1"}}, {"X-Subject-Token": token}


def ks_call(action: str, answer):
    """A call behind Keystone's policy engine (built on the process's first)."""
    token = keystone_like.read_token(request.headers.get("X-Auth-Token"))
    if token is None:
        abort(401)
    if not keystone_like.enforce(action, token):
        abort(403)
    return answer(token), {"Content-Type": "application/json", "X-Setup": keystone_like.POLICY.stamp()}


@app.get("/ks/project")
def ks_project():
    return ks_call("identity:get_project", keystone_like.project)


@app.get("/ks/catalog")
def ks_catalog():
    return ks_call("identity:get_auth_catalog", keystone_like.catalog)


@app.get("/ks/validate")
def ks_validate():
    subject = keystone_like.read_token(request.headers.get("X-Subject-Token"))
    if subject is None:
        abort(404)
    return ks_call("identity:validate_token", lambda token: keystone_like.validation(subject))


@app.get("/ckan/dataset/<int:number>")
def ckan_dataset(number):
    """CKAN's dataset page: its web assets (built on the process's first),
    several queries, a large template."""
    assets = ckan_like.ASSETS.get()
    found = ckan_like.dataset(number)
    if found is None:
        abort(404)
    return render_template("dataset.html", assets=assets, **found), {"X-Setup": ckan_like.ASSETS.stamp()}


@app.get("/apps/calibration")
def apps_calibration():
    """What the shapes calibrated at import, for apps.json."""
    return {"token_rounds": keystone_like.TOKEN_ROUNDS, "policy_passes": keystone_like.POLICY_PASSES,
            "assets_passes": ckan_like.ASSETS_PASSES, "setup_scale": per_process.SETUP_SCALE}
