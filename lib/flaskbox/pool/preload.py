"""Whether the app, once imported in uWSGI's master, can be forked whole
(preloading: the workers share its memory), judged from what the import
left behind (userapp/census.py) before any worker is forked.

- Threads (userapp/threads.py): a fork does not copy them.
- Connections (userapp/connections.py): a fork shares them. Those a
  library can open again are closed here, and it opens one in each worker;
  those a library replaces by itself after a fork are left alone.

What is left after that, a thread or a shared connection, ends the master
with LOADS_IN_EACH_WORKER, its line said, and the arbiter starts the pool
again with lazy-apps, each worker loading the app (arbiter/generation.py).
UWSGI_LAZY_APPS=false keeps preloading whatever the census found, said as a
warning; and so does an import that listens on a TCP port, which a second
worker could not bind again.
"""

from __future__ import annotations

import os

from .. import record
from ..layout import LOADS_IN_EACH_WORKER, RUNTIME_UNWRITABLE
from ..log import error, info, log, warn
from ..userapp import connections, threads
from ..userapp.census import Census
from .master import generation

FALSE = ("false", "0", "no", "off")


def pinned_lazy_apps(settings: record.Record) -> str | None:
    """The user's own lazy-apps (UWSGI_LAZY_APPS, or UWSGI_INI's), if any."""
    own = settings.uwsgi["ini"] + settings.uwsgi["env"]
    values = [value for option, value in own if option == "lazy-apps"]
    return values[-1] if values else None


def judge(census: Census, processes: int, settings: record.Record) -> None:
    """In the master, after the import: returns to preload, or ends the
    master with LOADS_IN_EACH_WORKER."""
    left = threads.left(census)
    if any(not thread.python for thread in left):
        threads.fork_once()  # the native threads that a fork stops are fork-safe
        left = threads.left(census)
    ending = [thread for thread in left if thread.ends_with_it]
    if ending:
        info(threads.end_with_it(ending))
        left = [thread for thread in left if not thread.ends_with_it]
    kept = (pinned_lazy_apps(settings) or "").strip().lower() in FALSE
    ports = threads.listens(census)
    opened = connections.left_open(census)
    if left and not kept and not ports:
        named = connections.settle(opened, close=False) if opened else None
        load_in_each_worker(left, named.shared if named else [], processes, census.grown, named)
    if left:
        warn(threads.kept(left, ports) if ports else
             f"{threads.found(left)}; UWSGI_LAZY_APPS=false keeps them in the master, and the workers "
             "have them only if the app starts them again after a fork (os.register_at_fork)")
    if not opened:
        return
    settled = connections.settle(opened)
    if settled.shared and not kept and not ports:
        load_in_each_worker([], settled.shared, processes, census.grown, settled)
    if settled.shared:
        why = ("UWSGI_LAZY_APPS=false keeps the app preloaded" if kept else
               f"the app stays preloaded for the port(s) it listens on ({', '.join(map(str, ports))}), "
               "which a second worker could not bind again")
        warn(f"{left_open(settled.shared)}, which every worker shares: {why}. Their queries interleave on "
             f"each socket, and an answer may carry another request's data. {how_to_preload(settled)}")
    if settled.closed or settled.renewed:
        info(preloaded(settled))


def left_open(shared: list[connections.Connection]) -> str:
    named = connections.named(shared)
    return f"the app's import left {len(shared)} connection(s) open in uWSGI's master: {named}"


def preloaded(settled: connections.Settled) -> str:
    """The line of connections that need nothing more: what was done."""
    done = []
    if settled.closed:
        owners = sorted({connection.owner for connection in settled.closed})
        done.append(f"closed {', '.join(owners)} before the fork ({'; '.join(settled.how)}), and each "
                    "worker's pool opens connections of its own when next asked")
    if settled.renewed:
        done.append("left redis-py's pool alone: it checks its pid, and opens new connections in each worker")
    return (f"{left_open(settled.closed + settled.renewed)}. A fork would share each with every worker: "
            f"{'; '.join(done)}. The app stays loaded once, in the master, its memory shared")


def how_to_preload(settled: connections.Settled | None) -> str:
    held = (f" (SQLAlchemy's pool of {', '.join(settled.held)} has a connection handed out: a Session or "
            "Connection the import did not close; Session.remove() or close() at its end gives it back)"
            if settled is not None and settled.held else "")
    return ("To keep preloading, connect in requests rather than at import, or close what the import "
            f"opened at its end{held}")


def load_in_each_worker(left: list[threads.Left], shared: list[connections.Connection], processes: int,
                        grown: int, settled: connections.Settled | None = None) -> None:
    """Says what was found, what is done and what it costs, leaves the
    mark the arbiter looks for, and ends the master."""
    found, why = [], []
    if left:
        found.append(threads.found(left))
        why.append("a fork does not copy threads, so forked workers would have their objects but not them")
    if shared:
        found.append(left_open(shared) if not left else
                     f"{len(shared)} connection(s) open: {connections.named(shared)}")
        why.append("a fork would share each connection with every worker, whose queries would interleave on "
                   "it and read each other's answers")
    megabytes = max(round(grown / (1 << 20)), 1)
    kinds = [kind for kind, some in (("threads", left), ("connections", shared)) if some]
    fix = ("restarts its threads after a fork (os.register_at_fork)" if left and not shared else
           "opens them again after a fork")
    why = "; and ".join(why)
    log(f"{', and '.join(found)}. {why[0].upper()}{why[1:]}: each of the {processes} worker(s) loads "
        f"the app itself instead (lazy-apps), its {' and '.join(kinds)} with it, which "
        f"costs about {megabytes} MB a worker (the import's size) where preloaded workers would share one "
        f"copy. {how_to_preload(settled) + '. ' if shared else ''}Set UWSGI_LAZY_APPS=true to skip the "
        f"first import, or UWSGI_LAZY_APPS=false to keep preloading if the app {fix}")
    mark = generation().in_each_worker
    try:
        mark.write_text("".join(f"{item}\n" for item in [*left, *shared]))
    except OSError as exc:
        error(f"cannot write {mark}: {exc.strerror} (RUNTIME_DIR's file system full?)")
        os._exit(RUNTIME_UNWRITABLE)
    os._exit(LOADS_IN_EACH_WORKER)
