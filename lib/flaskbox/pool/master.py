"""uWSGI's master, before its workers are forked: what it watches them
with, whether or not it loads the app itself.

uWSGI imports this module in the master before the app (app.ini's
`shared-import`). With lazy-apps off, the default, the master then loads
the app (wsgi.py), and wsgi.py prepares the master once it has. With
lazy-apps on (an app whose import leaves threads running, which the
arbiter then starts so: userapp/threads.py; or UWSGI_LAZY_APPS=true), the
master never loads the app, so this module prepares it, and each worker
loads the app itself.

So that nothing is imported before gevent's patches (app.ini's [gevent]
`import`, which comes after), this module imports only layout.py at its
top, and with lazy-apps applies the patches first itself."""

from __future__ import annotations

import os

from ..layout import GEVENT, IMPORT_TIMED_OUT, Generation

try:  # only inside uWSGI
    import uwsgi
except ImportError:  # unit tests
    uwsgi = None

if uwsgi is not None:
    # First: uWSGI's env options, which it set after python3 read its
    # environment (environment.py).
    from . import environment
    environment.follow()


def uwsgi_option(name: str, default: str) -> str:
    """An option as uWSGI ended up with it (the last of repeated ones)."""
    value = uwsgi.opt.get(name, default)
    if isinstance(value, list):
        value = value[-1]
    return value.decode() if isinstance(value, bytes) else str(value)


def generation() -> Generation:
    """This pool's generation (app.ini's %(flaskbox_generation)), whose
    folder holds its stats socket."""
    return Generation(os.path.dirname(uwsgi_option("stats", "")))


def lazy_apps() -> bool:
    """Whether each worker loads the app (uWSGI's lazy-apps, however set:
    the arbiter's --lazy-apps, UWSGI_LAZY_APPS, UWSGI_INI; or its older
    `lazy`, which implies it)."""
    return uwsgi_flag("lazy-apps") or uwsgi_flag("lazy")


def uwsgi_flag(name: str) -> bool:
    """An on/off option as uWSGI ended up with it (set with no value: on)."""
    return uwsgi_option(name, "false").strip().lower() in ("true", "1", "yes", "on", "")


def prepare_the_master(settings) -> None:
    """In the master only, before any fork: a worker starts with what it
    inherits out of the garbage collector's reach; three rounds of every
    worker failing is a pool that cannot stay up; a worker holds its
    graceful stop until it can act on it; a sync worker handles the stop
    signal from its start (gevent's does so on its first request, once its
    loop runs)."""
    if uwsgi is None or uwsgi.worker_id() != 0:
        return
    import gc
    from functools import partial

    from .. import record
    from ..request import stopping
    from . import children, forks, oom
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
        handle_the_stop = partial(stopping.install_handler_once, gevent_mode=False)
        forks.on_the_masters_forks(after_in_child=handle_the_stop)
    if lazy_apps():
        forks.on_the_masters_forks(after_in_child=forks.end_at_an_interrupt,
                                   after_in_parent=partial(an_import_ran_out, generation()))
    name_the_processes()


def an_import_ran_out(gen: Generation) -> None:
    """After the master forked a lazy-apps worker again, before any worker
    served: a worker's import ran past IMPORT_TIMEOUT (importing.Deadline
    dumped its stacks and ended it), so the pool ends with IMPORT_TIMED_OUT,
    as a master's own import past it does, and the arbiter says where it
    waited. uWSGI would fork its workers again and again instead, each
    waiting as long, until SpawnGuard gave up (exit code 3, "a crash at
    fork"). A pool that has served keeps forking them, as uWSGI does."""
    if not gen.ready.exists() and gen.import_stacks_dumped() is not None:
        os._exit(IMPORT_TIMED_OUT)


def name_the_processes() -> None:
    """The titles uWSGI gives its processes, where ps and the arbiter
    see them (titles.py): the master's now, a worker's from its fork, and
    its number once uWSGI has given it one (its post-fork hook, after the
    app's own if it set one)."""
    from . import forks, titles
    names = titles.Titles(uwsgi_option)
    names.master()
    forks.on_the_masters_forks(after_in_child=names.worker)
    own = getattr(uwsgi, "post_fork_hook", None)

    def post_fork() -> None:
        names.worker(uwsgi.worker_id())
        if own is not None:
            own()
    uwsgi.post_fork_hook = post_fork


def prepare_a_lazy_master() -> None:
    from .. import record
    settings = record.load()
    if settings["WORKER_CLASS"] == GEVENT:
        # Patched before flaskbox's own modules are imported, as wsgi.py's
        # are in a master that loads the app; the workers inherit both.
        from . import gevent_patch  # noqa: F401
    prepare_the_master(settings)


if uwsgi is not None and uwsgi.worker_id() == 0 and lazy_apps():
    prepare_a_lazy_master()
