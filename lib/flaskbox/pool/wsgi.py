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

An app whose import left threads running or connections open that a fork
would share (pool/preload.py) cannot be forked whole: the master says so
and exits with LOADS_IN_EACH_WORKER, and the arbiter starts the pool again
with lazy-apps, where this module runs in each worker instead (and
master.py prepares the master).

Then it prepares the pool: it watches the workers being forked
(forks.SpawnGuard) and hands them the app frozen out of the garbage
collector's reach (gc.freeze). What runs per request is serve.py's.
"""

from __future__ import annotations

import gc
import json
import os
import signal
from pathlib import Path
from typing import NoReturn

from .. import record
from ..layout import (
    GEVENT,
    IMPORT_FAILED,
    NOT_AN_APP,
    RUNTIME_UNWRITABLE,
    stream_slots,
)
from ..log import error, info, warn
from ..request import admission, guards, streams, unlimited, websocket
from ..request.deadline import Times
from ..request.outbound import Share
from ..request.parking import NEVER
from ..request.serve import GeventServe, Serve
from ..request.spool import Spool
from ..sidecars import unix_sockets
from ..start import static
from ..userapp import discover, importing, load_failure, refused_writes, static_folders
from ..userapp.census import Census
from . import gevent_exit, master, preload
from .master import generation, uwsgi_flag, uwsgi_option

try:  # only inside uWSGI
    import uwsgi
except ImportError:  # unit tests
    uwsgi = None


def load_app(settings: record.Record, census: Census, says: bool) -> discover.Found:
    """APP_MODULE's app, the threads its import leaves counted by `census`,
    its app.run() said if `says` (first).
    Not an app (a factory named without a call, a module with none, a module
    that is not there): the message says what to write instead, and uWSGI
    exits with NOT_AN_APP (2), so the container does, before anything is
    served. An import that fails (a package the app imports that is not
    installed, say): why (load_failure.py), and need-app's exit code,
    IMPORT_FAILED (22). With lazy-apps every worker imports at once, and
    most often fails alike: only the first to fail says why."""
    gen = generation()
    stacks = gen.import_stacks_of(os.getpid()) if a_lazy_worker() else gen.import_stacks
    try:
        # The census inside the Deadline: its watchdog thread is no app's.
        with importing.Deadline(settings["IMPORT_TIMEOUT"], stacks, gen.import_progress), census, \
                importing.ServerCalls(says), refused_writes.watch():
            return discover.load(settings["APP_MODULE"])
    except discover.AppError as exc:
        says_why = says_why_it_failed()
        if says_why:
            error(str(exc))
        code = NOT_AN_APP
    except Exception as exc:
        says_why = says_why_it_failed()
        code = NOT_AN_APP if load_failure.explain(exc, settings["APP_MODULE"], says_why) else IMPORT_FAILED
    failed(code, says_why)


def says_why_it_failed() -> bool:
    """Whether this process says why the app did not load: the master (or a
    lone worker), or with lazy-apps the first worker whose import failed.
    That worker ignores SIGINT, the master's end of every worker, from
    before it takes the mark: a sibling that failed alike ends sooner,
    saying nothing, and the master's SIGINT that follows cut the
    explanation short (seen: the log had no traceback at all)."""
    if not a_lazy_worker():
        return True
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    if first(generation().failed):
        return True
    signal.signal(signal.SIGINT, before)
    return False


def failed(code: int, said: bool) -> NoReturn:
    """Ends a process whose app did not load. A lazy-apps worker ends with
    need-app's IMPORT_FAILED whatever the reason: on that code alone uWSGI's
    master ends every worker, where on another (NOT_AN_APP) it forked them
    again and again until SpawnGuard gave up (exit code 3, as if forks
    crashed). The code meant is in the mark, where the arbiter reads it."""
    if said:
        try:
            generation().failed.write_text(f"{code}\n")
        except OSError:
            pass  # the arbiter then goes by the master's code
    os._exit(IMPORT_FAILED if a_lazy_worker() else code)


def preloading() -> bool:
    """Whether this is the master loading the app for the workers it forks
    (not a worker of lazy-apps, nor a lone worker with no master)."""
    return uwsgi.worker_id() == 0


def a_lazy_worker() -> bool:
    """Whether this is one of the workers of lazy-apps, each loading the app."""
    return not preloading() and bool(uwsgi.masterpid()) and master.lazy_apps()


def first(mark: Path) -> bool:
    """Whether this is the one process of the generation to say something
    (its mark: Generation.said, .failed): the master, or with lazy-apps
    the first worker to get there. A mark that cannot be made (a full
    disk) makes every process say it: rather twice than not at all."""
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        return False
    except OSError:
        return True


def from_record(settings: record.Record):
    gen = generation()
    # Before the import: with lazy-apps each worker imports the app, and
    # every respawn, but only the first says what the import showed.
    says = first(gen.said)
    census = Census()
    found = load_app(settings, census, says)
    processes = int(uwsgi_option("processes", "1"))
    if preloading():
        preload.judge(census, processes, settings)
    if says:
        for line in importing.app_mistakes(found.app, settings, processes):
            warn(line)
    # Where its static files are and how long browsers may keep them, and
    # the largest body it takes, now that the app can say: the arbiter
    # renders nginx's static locations and body limit from it (static.py,
    # body.py), checked with `nginx -t`, when this generation starts serving.
    # In one rename: with lazy-apps each worker writes it, and the arbiter
    # may read it meanwhile.
    place, new = gen.app, gen.app.with_name(f"app.json.{os.getpid()}")
    described = {**found.describe(), **static_folders.describe(found.app),
                 "max_content_length": importing.max_content_length(found.app)}
    try:
        new.write_text(json.dumps(described))
        new.replace(place)
    except OSError as exc:
        # Not the app's fault: said as such (the arbiter reads the code),
        # not as code that no longer imports.
        error(f"cannot write {place}: {exc.strerror} (RUNTIME_DIR's file system full?)")
        os._exit(RUNTIME_UNWRITABLE)
    # By when its event streams end at a stop or a retirement (stopping.py).
    streams.OPEN.end_file = str(gen.streams_end)
    if settings["STATIC_ENABLED"] and says:
        # Static files the app serves itself, where nginx has no folder (SearXNG's WhiteNoise).
        for line in static_folders.app_serves(found.app, described, static.folders(settings, described)):
            info(line)
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
    threads_each = int(uwsgi_option("threads", "1"))
    watchdog = common["watchdog"] = guards.Watchdog(timeout, common["memory_cap"], threads_each)
    folder = generation().dir  # its pid read at each call: this runs before the fork
    watchdog.connections = lambda: unix_sockets.held_connections(os.getpid(), folder)
    if settings["CLIENT_STREAM_SHARE"] < 100:
        common["share"] = Share(settings["CLIENT_STREAM_SHARE"], processes, threads_each)
    # ADAPTIVE_THREADS: the limit on the requests each worker runs at once
    # (admission.py; UWSGI_INI may set its own threads), and the times of
    # each kind of request, the app's routes where it names them (Flask's url_map).
    times = Times(timeout, processes, routed=hasattr(found.app, "url_map"))
    gated = admission.gated(settings) and threads_each > 1
    if not gated:
        return Serve(found.app, timeout, gate=unlimited.Timed(times), **common)
    # No thread parks where uWSGI logs every answer, nor where it ends or
    # reloads workers by itself, unannounced here (parking.py).
    parks = not logs_more_than_5xx() and not any(uwsgi_option(name, "") for name in OWN_ENDS)
    gate = watchdog.gate = admission.Gate(threads_each, times, gen, parks=parks,
                                          recycles=lambda: recycles(threads_each), running=watchdog.running)
    if parks:
        park_after(gate)
    return Serve(found.app, timeout, gate=gate, **common)


def park_after(gate: admission.Gate) -> None:
    """uWSGI's after-request hook parks the threads the limit does not need
    (request/parking.py), after the app's own hook if it set one."""
    own = getattr(uwsgi, "after_req_hook", None)
    if own is None:
        uwsgi.after_req_hook = gate.after_request
        return

    def after_request() -> None:
        try:
            own()
        finally:
            gate.after_request()
    uwsgi.after_req_hook = after_request


def recycles(threads: int) -> int:
    """The requests this worker serves before uWSGI recycles it (its
    max-requests, and max-requests-delta times its number), less a margin
    for those its other threads have under way: no thread parked then.
    Asked once a worker, after its fork (its number)."""
    try:
        most = int(uwsgi_option("max-requests", "0"))
        delta = int(uwsgi_option("max-requests-delta", "0"))
        return most + (uwsgi.worker_id() - 1) * delta - 2 * threads if most else NEVER
    except (ValueError, AttributeError):
        return NEVER


# uWSGI's options (UWSGI_INI's) under which it ends a worker by itself:
# its cheaper mode's idle ones, and graceful reloads, which wait for every
# thread, a parked one too, until worker-reload-mercy kills the worker.
OWN_ENDS = ("cheaper", "reload-on-rss", "reload-on-as", "evil-reload-on-rss", "evil-reload-on-as",
            "max-worker-lifetime", "touch-workers-reload", "touch-chain-reload")
# uWSGI's options that log answers besides 5xx under disable-logging.
OTHER_LINES = ("log-4xx", "log-slow", "log-big", "log-zero", "log-sendfile", "log-ioerror")


def logs_more_than_5xx() -> bool:
    """Whether uWSGI writes a line for answers other than 5xx (app.ini's
    disable-logging undone, or a log-4xx, log-slow... of the user's): no
    thread then parks, so that no line waits for the next load."""
    try:
        return not uwsgi_flag("disable-logging") or any(name in uwsgi.opt for name in OTHER_LINES)
    except Exception:
        return True  # unknown: as if it did


def prepare_the_process(settings: record.Record) -> None:
    """Where the app is loaded (the master, or each worker with
    lazy-apps): a gevent worker runs the app's exit handlers at its end
    (gevent_exit.py); a lone worker starts as a forked one does."""
    if settings["WORKER_CLASS"] == GEVENT:
        # uWSGI runs no Python exit handler in a gevent worker: this does.
        gevent_exit.install(uwsgi)
    if not uwsgi.masterpid():
        # A lone worker, with no master to fork it (bench/prices.py counts
        # one so): it starts as a forked one does, the app frozen.
        gc.freeze()


if uwsgi is not None:
    SETTINGS = record.load()
    application = from_record(SETTINGS)
    prepare_the_process(SETTINGS)
    master.prepare_the_master(SETTINGS)
    websocket.mark_native_handshakes(uwsgi)
