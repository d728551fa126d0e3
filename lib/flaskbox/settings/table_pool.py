"""The settings table's chapter on the uWSGI pool: its worker class, its
processes and threads, which process serves a client, a worker's memory,
and gevent's connections and streams."""

from __future__ import annotations

from ..layout import GEVENT, SYNC
from . import defaults
from .forms import flag, one_of, size_bytes, whole
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "WORKER_CLASS",
        default=SYNC,
        form="sync or gevent",
        parse=one_of(SYNC, GEVENT),
        doc=("`sync`: one request per worker thread. `gevent`: thousands of streams, Server-Sent Events "
             "and WebSockets per process ([streaming](streaming.md))."),
        enforced=(
            "app.ini: ini = %p:${WORKER_CLASS} (its [sync] or [gevent] section)",
            "pool.wsgi.from_record (gevent: streams.Limits and the stream slots)",
            "pool.master.prepare_the_master (sync: the stop signal's handler from the fork)",
            "pool.master.prepare_a_lazy_master (gevent: its patches before flaskbox's modules)",
            "pool.wsgi.prepare_the_process (gevent: the app's exit handlers, gevent_exit.py)",
            "request.serve.Serve (guards.Watchdog with sync, guards.LoopWatch with gevent)",
            "pool.wsgi.from_record (sync: CLIENT_STREAM_SHARE)",
            "sidecars.metrics.main (metrics.Collector)",
            "__main__.render_configs (the pool's line in the start's log)",
            "__main__.checked (packages.notes: gevent installed, nothing in conflict)",
            "userapp.importing.app_mistakes (Flask-SocketIO on sync workers taken in turn)",
            "settings.resolve._check_worker_class (the other class's settings refused)",
            "settings.resolve._fit_pids",
            "settings.resolve._upstream_timeout",
            "settings.resolve.derived (WORKER_RELOAD_MERCY)",
            "settings.pids.need (threads per process)",
            "request.admission.gated (ADAPTIVE_THREADS' gate: sync only)",
        ),
    ),
    Setting(
        "UWSGI_PROCESSES",
        default=defaults.processes,
        default_doc="1 per CPU, at least 2; 1 with `gevent` (computed)",
        form="a whole number of processes from 1 to 1024",
        parse=whole(1, 1024),
        doc="uWSGI worker processes. CPUs are the container's quota (`--cpus`), not the host's cores.",
        enforced=(
            "app.ini: processes",
            "start.render.sticky",
            "start.render.socket_names (a socket per process)",
            "__main__.render_configs (its log line)",
            "settings.resolve._cheaper (cheaper mode below it)",
            "settings.resolve._fit_pids (the pids limit)",
            "settings.pids.need",
            "settings.resolve.derived (UPSTREAM_MAX_CONNS, UWSGI_LISTEN: `capacity`)",
        ),
    ),
    Setting(
        "UWSGI_THREADS",
        default=defaults.threads,
        default_doc="`32`; 1 with `gevent` (computed)",
        form="a whole number of threads per process from 1 to 1024",
        parse=whole(1, 1024),
        doc=("Threads per uWSGI process (`sync` only): the most requests each process serves at once; "
             "ADAPTIVE_THREADS runs fewer while they compute. Each open stream holds one."),
        enforced=(
            "app.ini: threads",
            "__main__.render_configs (its log line)",
            "settings.resolve._check_worker_class (gevent: refused)",
            "settings.resolve._fit_pids (lowered to fit the pids limit)",
            "settings.resolve._reload_fits (RELOAD_ROOM)",
            "settings.pids.fitted_threads",
            "settings.resolve._pool_pids (POOL_PIDS: room for a reload's third pool, arbiter.Arbiter)",
            "settings.resolve.derived (UPSTREAM_MAX_CONNS, UWSGI_LISTEN: `capacity`)",
            "request.admission.gated (ADAPTIVE_THREADS' gate: more than one thread)",
        ),
    ),
    Setting(
        "ADAPTIVE_THREADS",
        default="1",
        form="1 (each process runs as many requests at once as run in their time alone) or 0",
        parse=flag,
        doc=("`1` (`sync`): each process runs only as many of its UWSGI_THREADS requests at once as its "
             "requests use at the time they take alone, plus the square root of that: pages that wait get "
             "every thread, pages that compute (in Python's lock or out of it, a password hash among them) "
             "about two a process; the others wait for a place while they can still be answered in time "
             "([production.md](production.md#adaptive-threads)). `0`: every thread, always. Off with "
             "STICKY_CLIENTS=1."),
        enforced=(
            "request.admission.gated (with WORKER_CLASS, UWSGI_THREADS and STICKY_CLIENTS)",
            "pool.wsgi.from_record (`admission.gated`: the gate, admission.Gate)",
            "__main__.render_configs (`admission.gated`: the pool's line in the start's log)",
        ),
    ),
    Setting(
        "STICKY_CLIENTS",
        default=lambda context: "1" if context.values["WORKER_CLASS"] == GEVENT else "0",
        default_doc="`1` with `gevent`, `0` with `sync` (computed)",
        form="1 (each client address is served by one process) or 0",
        parse=flag,
        doc=("`1`: each client (its address, or the one a trusted proxy reports) is always served by the "
             "same uWSGI process, for apps that keep state in one process (logins, sessions, Socket.IO) "
             "([your-app.md](your-app.md#state-kept-in-one-process)). `0`: any free process serves."),
        enforced=(
            "start.render.sticky",
            "start.render.uwsgi_sockets (a socket per process, map-socket)",
            "start.render.upstream_servers (nginx's hash $binary_remote_addr consistent)",
            "request.admission.gated (ADAPTIVE_THREADS' gate: off, each process having its own socket)",
            "userapp.importing.app_mistakes (Flask-SocketIO's sessions: each client on one process)",
        ),
    ),
    Setting(
        "WORKER_MAX_MEMORY",
        default=defaults.worker_max_memory,
        default_doc="a fair share of the container's memory limit per process; `0` (off) without one "
                    "(computed)",
        form="a size such as 300m or 1g (0: off)",
        parse=size_bytes,
        doc=("A worker whose resident memory grows past this is replaced gracefully: it takes no new "
             "requests, finishes its own, then a fresh one takes its place "
             "([production.md](production.md#memory-processes-and-threads))."),
        enforced=(
            "pool.wsgi.from_record",
            "request.memory.MemoryCap (in guards.Watchdog with sync, guards.LoopWatch with gevent)",
        ),
    ),
    Setting(
        "WORKER_CONNECTIONS",
        # gunicorn's name for the same thing. An open stream costs ~30 KB in
        # uWSGI and ~17 KB in nginx, its 16 KB buffer included (measured with
        # 1500 open: +43 MB and +26 MB RSS), so the 1800 that may stream
        # (stream_slots) take ~85 MB; nginx's 8192 connection slots hold
        # them twice over (a stream takes two: the client's and uWSGI's).
        default="2000",
        form="a whole number of connections per process from 1 to 100000",
        parse=whole(1, 100000),
        doc="`gevent` only: requests, streams and WebSockets each process holds at once.",
        enforced=(
            "app.ini: gevent = ${WORKER_CONNECTIONS}",
            "pool.wsgi.from_record (layout.stream_slots: serve.GeventServe.full)",
            "settings.resolve.GEVENT_ONLY (refused with sync)",
            "settings.resolve.derived (UPSTREAM_MAX_CONNS, UWSGI_LISTEN: `capacity`)",
            "__main__.render_configs (the pool's line in the start's log)",
        ),
    ),
    Setting(
        "STREAM_IDLE_TIMEOUT",
        # Longer than the idle timeouts of common load balancers (AWS ALB 60 s,
        # Cloudflare 100 s), so apps that keep streams alive for those pass
        # here too; short enough that a stream whose producer hung is freed
        # in two minutes.
        default="120",
        form="a whole number of seconds from 1 to 86400",
        parse=whole(1, 86400),
        doc=("`gevent` only: seconds a stream or WebSocket may send nothing before it is closed (an event "
             "stream ends cleanly and EventSource reconnects; any other stream is cut, visibly)."),
        enforced=(
            "pool.wsgi.from_record",
            "request.streams.Limits.next",
            "settings.resolve._upstream_timeout",
            "nginx.conf: proxy_read_timeout (UPSTREAM_TIMEOUT)",
            "settings.resolve.GEVENT_ONLY (refused with sync)",
        ),
    ),
    Setting(
        "STREAM_MAX_DURATION",
        # An hour: long enough for any LLM answer or upload progress feed;
        # short enough that long-lived clients reconnect (EventSource and
        # Socket.IO do so by themselves) and so spread over new containers.
        default="3600",
        form="a whole number of seconds from 0 (no limit) to 604800",
        parse=whole(0, 604800),
        doc="`gevent` only: seconds an event stream or WebSocket may last in all (`0`: no limit); then it "
            "ends cleanly and the client reconnects. Other responses are never ended by it.",
        enforced=(
            "pool.wsgi.from_record",
            "request.streams.Limits.next (an event stream)",
            "request.streams.Limits.bound_websocket",
            "settings.resolve.GEVENT_ONLY (refused with sync)",
        ),
    ),
)
