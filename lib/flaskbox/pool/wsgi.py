"""The module uWSGI loads (app.ini: `module = flaskbox.pool.wsgi:application`).
It runs once, in the uWSGI master, before any worker is forked (lazy-apps
is off): it reads the record of this start (record.py), imports the user's
app (APP_MODULE, found as `flask run` finds it: discover.py) within
IMPORT_TIMEOUT, writes what the app says of its static folders and of
its largest body for the arbiter (which renders nginx's static locations
and body limit from it: static.py, body.py), and
wraps the app in what each request needs, one layer: `application`, a
serve.Serve (serve.GeventServe with gevent). An app that cannot load ends
the master with an exit code the arbiter reads (layout.py: IMPORT_FAILED, ...).

Then it prepares the pool: it watches the workers being forked
(forks.SpawnGuard) and hands them the app frozen out of the garbage
collector's reach (gc.freeze). What runs per request is serve.py's.
"""

from __future__ import annotations

import gc
import json
import os
from functools import partial

from .. import record
from ..layout import GEVENT, IMPORT_FAILED, NOT_AN_APP, RUNTIME_UNWRITABLE, Generation, stream_slots
from ..log import error, warn
from ..request import streams
from ..request.outbound import Share
from ..request.serve import GeventServe, Serve
from ..request.spool import Spool
from ..userapp import discover, importing, load_failure, refused_writes, static_folders
from . import children, forks, gevent_exit, oom

try:  # only inside uWSGI
    import uwsgi
except ImportError:  # unit tests
    uwsgi = None


def uwsgi_option(name: str, default: str) -> str:
    """An option as uWSGI ended up with it (the last of repeated ones)."""
    value = uwsgi.opt.get(name, default)
    if isinstance(value, list):
        value = value[-1]
    return value.decode() if isinstance(value, bytes) else str(value)


def load_app(settings: record.Record) -> discover.Found:
    """APP_MODULE's app. Not an app (a factory named without a call, a
    module with none, a module that is not there): the message says what to
    write instead, and uWSGI exits with NOT_AN_APP (2), so the container
    does, before anything is served. An import that fails (a package the app
    imports that is not installed, say): why (load_failure.py), and
    need-app's exit code, IMPORT_FAILED (22)."""
    try:
        with importing.Deadline(settings["IMPORT_TIMEOUT"], generation().import_stacks), \
                importing.ServerCalls(), refused_writes.watch():
            return discover.load(settings["APP_MODULE"])
    except discover.AppError as exc:
        error(str(exc))
        os._exit(NOT_AN_APP)
    except Exception as exc:
        os._exit(NOT_AN_APP if load_failure.explain(exc, settings["APP_MODULE"]) else IMPORT_FAILED)


def generation() -> Generation:
    """This pool's generation (app.ini's %(flaskbox_generation)), whose
    folder holds its stats socket."""
    return Generation(os.path.dirname(uwsgi_option("stats", "")))


def from_record(settings: record.Record):
    found = load_app(settings)
    processes = int(uwsgi_option("processes", "1"))
    for line in importing.app_mistakes(found.app, settings, processes):
        warn(line)
    # Where its static files are and how long browsers may keep them, and
    # the largest body it takes, now that the app can say: the arbiter
    # renders nginx's static locations and body limit from it (static.py,
    # body.py), checked with `nginx -t`, when this generation starts serving.
    place = generation().app
    said = {**found.describe(), **static_folders.describe(found.app),
            "max_content_length": importing.max_content_length(found.app)}
    try:
        place.write_text(json.dumps(said))
    except OSError as exc:
        # Not the app's fault: said as such (the arbiter reads the code),
        # not as code that no longer imports.
        error(f"cannot write {place}: {exc.strerror} (RUNTIME_DIR's file system full?)")
        os._exit(RUNTIME_UNWRITABLE)
    if settings["METRICS_PORT"]:
        streams.OPEN.metrics_dir = str(record.runtime().dir / "metrics")
    # The processes and threads as uWSGI ended up with them (UWSGI_INI may
    # set its own): `processes`, above.
    common = {"spool": Spool(settings["RUNTIME_DIR"], settings["RESPONSE_SPACE"], processes),
              "allowed_hosts": tuple(settings["ALLOWED_HOSTS"]), "url_prefix": settings["URL_PREFIX"],
              "compressed": settings["COMPRESS_APP_RESPONSES"], "memory_cap": settings["WORKER_MAX_MEMORY"],
              "connection_fd": uwsgi.connection_fd, "worker_id": uwsgi.worker_id}
    timeout = float(settings["REQUEST_TIMEOUT"])
    if settings["WORKER_CLASS"] == GEVENT:
        limits = streams.Limits(float(settings["STREAM_IDLE_TIMEOUT"]),
                                float(settings["STREAM_MAX_DURATION"]))
        return GeventServe(found.app, timeout, limits, stream_slots(settings["WORKER_CONNECTIONS"]), **common)
    if settings["CLIENT_STREAM_SHARE"] < 100:
        common["share"] = Share(settings["CLIENT_STREAM_SHARE"], processes, int(uwsgi_option("threads", "1")))
    return Serve(found.app, timeout, **common)


def prepare_the_pool(settings: record.Record) -> None:
    """In the master only (where the app is loaded, before any fork): a
    worker starts with what it inherits out of the garbage collector's
    reach; three rounds of every worker failing is a pool that cannot stay
    up; a worker holds its graceful stop until it can act on it; a sync
    worker handles the stop signal from its start (gevent's does so on its
    first request, once its loop runs), and a gevent worker runs the app's
    exit handlers at its end (gevent_exit.py)."""
    if uwsgi is None:
        return
    if settings["WORKER_CLASS"] == GEVENT:
        # uWSGI runs no Python exit handler in a gevent worker: this does.
        gevent_exit.install(uwsgi)
    if not uwsgi.masterpid():
        # A lone worker, with no master to fork it (bench/prices.py counts
        # one so): it starts as a forked one does, the app frozen.
        gc.freeze()
    if uwsgi.worker_id() != 0:
        return
    processes = int(uwsgi_option("processes", "1"))
    metrics_dir = str(record.runtime().dir / "metrics") if settings["METRICS_PORT"] else None
    guard = forks.SpawnGuard(str(generation().accepting), 3 * processes, metrics_dir=metrics_dir,
                             stop_timeout=settings["STOP_TIMEOUT"])
    # gc.freeze(): a worker's full collections skip the objects it got from
    # the master (the app and its imports). Otherwise the first one wrote to
    # every one of them, copying their pages out of the shared memory, and
    # held all of the worker's threads meanwhile (22-60 ms at 3940
    # requests/s: docs/BENCHMARKS.md, "Collections in a new worker").
    # A worker, not the master, is what the kernel's OOM killer ends (oom.py).
    forks.on_the_masters_forks(before=gc.freeze, after_in_parent=guard.after_fork,
                                after_in_child=oom.worker_first)
    forks.on_the_masters_forks(**forks.hold_the_stop(settings["WORKER_CLASS"] == GEVENT))
    # The processes the app starts in a request take signals as under plain
    # Python (flaskbox/pool/children.py).
    children.start_plain(os.getpid())
    if settings["WORKER_CLASS"] != GEVENT:
        handle_the_stop = partial(streams.install_stop_handler_once, gevent_mode=False)
        forks.on_the_masters_forks(after_in_child=handle_the_stop)


if uwsgi is not None:
    SETTINGS = record.load()
    application = from_record(SETTINGS)
    prepare_the_pool(SETTINGS)
    streams.mark_native_handshakes(uwsgi)
