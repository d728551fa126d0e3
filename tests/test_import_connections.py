"""An app whose import leaves a connection open works unchanged (issue 68).

A fork copies every descriptor, so a connection the import opened in
uWSGI's master would be one socket in every worker, their queries
interleaved on it (CKAN's answers carried another request's data). The
master finds such connections before the fork (userapp/connections.py,
pool/preload.py): it closes an idle pool's connections where the library
opens new ones by itself (SQLAlchemy's Engine.dispose()), leaves alone
those a library replaces after a fork (redis-py), and loads the app in each
worker for the rest. Each test proves, under concurrent load against a real
PostgreSQL (or Redis), that every answer is its own: the token a request
sent came back through the database, and no two workers were answered by
one server connection."""

from __future__ import annotations

import collections
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from databases import PASSWORD, Postgres, Redis

from containers import ContainerFactory
from helpers import docker

pytestmark = pytest.mark.interpreter

# uWSGI's line for each load of the app: in the master (preloaded) or in
# each worker (lazy-apps), by pid.
LOADED = re.compile(r"WSGI app 0 \(mountpoint=''\) ready in \d+ seconds on interpreter \w+ pid: (\d+)")
LEFT = "connection(s) open in uWSGI's master"
CLIENTS, EACH = 12, 40


@pytest.fixture(scope="module")
def postgres():
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server():
    server = Redis().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def connections_app(app_images):
    factory = ContainerFactory(app_images("connections"))
    yield factory
    factory.cleanup()


def serve(factory, module: str, postgres, **env):
    # Two threads a sync process: twelve clients at once need every worker
    # (one process of the default's 32 threads would take them all).
    threads = {} if env.get("WORKER_CLASS") == "gevent" else {"UWSGI_THREADS": "2"}
    c = factory.run(env={"APP_MODULE": f"{module}:app", "DATABASE_URL": postgres.url, "UWSGI_PROCESSES": "4",
                         **threads, **env})
    c.wait_http(f"/echo?token={uuid.uuid4().hex}", timeout=60)
    return c


def loads(c) -> set[str]:
    return set(LOADED.findall(c.logs()))


def every_answer_its_own(c, clients: int = CLIENTS, each: int = EACH) -> dict[int, set[int]]:
    """Concurrent requests, each with a token of its own: every answer is a
    200 carrying its own token back, and no server connection answered two
    workers. Returns the server connections each worker used."""
    def client(_):
        got = []
        for _ in range(each):
            token = uuid.uuid4().hex
            response = c.request(f"/echo?token={token}", timeout=30)
            got.append((token, response.status, response.json() if response.status == 200 else response.text))
        return got

    with ThreadPoolExecutor(clients) as pool:
        results = [answer for got in pool.map(client, range(clients)) for answer in got]
    failed = [(status, body) for _, status, body in results if status != 200]
    assert not failed, (failed[:5], c.logs()[-4000:])
    foreign = [(token, body) for token, _, body in results if body["token"] != token]
    assert not foreign, f"{len(foreign)} answers carried another request's token: {foreign[:5]}"
    workers = collections.defaultdict(set)
    for _, _, body in results:
        workers[body["backend"]].add(body["pid"])
    shared = {backend: pids for backend, pids in workers.items() if len(pids) > 1}
    assert not shared, f"server connections used by more than one worker: {shared}"
    by_worker = collections.defaultdict(set)
    for backend, pids in workers.items():
        by_worker[next(iter(pids))].add(backend)
    return by_worker


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_a_pool_queried_as_the_app_is_made_is_closed_before_the_fork(connections_app, postgres, worker_class):
    c = serve(connections_app, "pool_app", postgres, WORKER_CLASS=worker_class)
    logs = c.logs()
    url = rf"postgresql\+psycopg2://postgres:\*\*\*@127\.0\.0\.1:{postgres.port}/postgres"
    assert re.search(rf"left 1 {re.escape(LEFT)}: 127\.0\.0\.1:{postgres.port} \(SQLAlchemy's pool of "
                     rf"{url}\)\. A fork would share each with every worker: closed SQLAlchemy's pool of .* "
                     r"before the fork \(Engine\.dispose\(\), as SQLAlchemy's documentation advises before "
                     r"os\.fork\(\)\).*The app stays loaded once, in the "
                     r"master", logs), logs
    assert PASSWORD not in logs
    # Preloaded: the app was imported once, in the master.
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs
    answered = every_answer_its_own(c)
    if worker_class == "sync":  # one queue for all (gevent's each have a socket, filled one at a time)
        assert len(answered) == 4, answered


def test_a_worker_forked_again_and_a_reload_open_their_own(connections_app, postgres):
    c = serve(connections_app, "pool_app", postgres)
    every_answer_its_own(c, each=10)
    master = c.pids("flaskbox uWSGI master")[0]
    worker = c.pids("flaskbox uWSGI worker")[0]
    c.signal("KILL", worker)
    # A worker forked again from the same master: the pool it inherits is empty.
    c.wait_until(lambda: worker not in c.pids("flaskbox uWSGI worker")
                 and len(c.pids("flaskbox uWSGI worker")) == 4, "the worker forked again", timeout=60)
    assert len(every_answer_its_own(c, each=20)) == 4
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the new code",
                 timeout=60)
    c.wait_until(lambda: master not in c.pids("flaskbox uWSGI master"), "the old master's end", timeout=60)
    assert len(every_answer_its_own(c, each=20)) == 4
    # The new generation's master found and closed it again.
    assert c.logs().count("closed SQLAlchemy's pool of") == 2, c.logs()


def test_a_raw_connection_opened_at_import_loads_the_app_in_each_worker(connections_app, postgres):
    c = serve(connections_app, "raw_app", postgres)
    logs = c.logs()
    assert re.search(rf"left 1 {re.escape(LEFT)}: 127\.0\.0\.1:{postgres.port} \(psycopg2\)\. A fork "
                     r"would share each connection with every worker, whose queries would interleave on it "
                     r"and read each other's answers: each of the 4 worker\(s\) loads the app itself instead "
                     r"\(lazy-apps\), its connections with it, which costs about \d+ MB a worker",
                     logs), logs
    assert "connect in requests rather than at import" in logs, logs
    assert len(every_answer_its_own(c)) == 4
    assert c.pids("flaskbox uWSGI master")[0] not in loads(c), logs


def test_a_session_left_open_at_import_is_named_and_loads_in_each_worker(connections_app, postgres):
    c = serve(connections_app, "pool_app", postgres, HOLD="1", UWSGI_PROCESSES="2")
    logs = c.logs()
    # The pool's idle connection was closed; the one handed out is shared.
    assert re.search(rf"left 1 {re.escape(LEFT)}: 127\.0\.0\.1:{postgres.port} \(psycopg2\).*each of the "
                     r"2 worker\(s\) loads the app itself instead \(lazy-apps\).*has a connection handed "
                     r"out: a Session or Connection the import did not close", logs), logs
    assert len(every_answer_its_own(c, each=20)) == 2


def test_an_engine_that_connects_only_in_requests_stays_preloaded_and_silent(connections_app, postgres):
    c = serve(connections_app, "engine_app", postgres)
    logs = c.logs()
    assert LEFT not in logs, logs
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs
    assert len(every_answer_its_own(c)) == 4


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_redis_pys_pool_is_left_to_open_its_own_in_each_worker(connections_app, postgres, redis_server,
                                                               worker_class):
    # With gevent, redis-py's socket is gevent's: its connect is watched too.
    c = serve(connections_app, "redis_app", postgres, REDIS_URL=redis_server.url, WORKER_CLASS=worker_class)
    logs = c.logs()
    assert re.search(rf"left 1 {re.escape(LEFT)}: 127\.0\.0\.1:{redis_server.port} \(redis-py's pool, "
                     r"opened at redis/connection\.py, line \d+, in _connect, from /app/redis_app\.py, "
                     r"line 9, in <module>\)\. A fork would share each with every worker: left redis-py's "
                     r"pool alone",
                     logs), logs
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs
    answered = every_answer_its_own(c)
    if worker_class == "sync":
        assert len(answered) == 4, answered


def test_uwsgi_lazy_apps_false_keeps_a_shared_connection_and_says_what_that_means(connections_app, postgres):
    c = serve(connections_app, "raw_app", postgres, UWSGI_LAZY_APPS="false", UWSGI_PROCESSES="2")
    logs = c.logs()
    assert re.search(rf"warning: the app's import left 1 {re.escape(LEFT)}: 127\.0\.0\.1:"
                     rf"{postgres.port} \(psycopg2\), which every worker shares: UWSGI_LAZY_APPS=false keeps "
                     r"the app preloaded\. Their queries interleave on each socket, and an answer may carry "
                     r"another request's data", logs), logs
    assert loads(c) == set(c.pids("flaskbox uWSGI master")), logs
