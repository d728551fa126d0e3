"""The settings table's chapter on nginx in front of the pool: its
workers, the queue for a busy pool, what one client may hold, and the disk
that request and response bodies may take."""

from __future__ import annotations

from . import defaults
from .forms import size_bytes, whole
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "NGINX_WORKER_PROCESSES",
        accepts_auto=True,
        default=lambda context: str(context.host.cpus()),
        default_doc="1 per CPU (computed)",
        form="a whole number of nginx workers from 1 to 1024",
        parse=whole(1, 1024),
        doc="nginx worker processes (`auto` means the default).",
        enforced=(
            "nginx.conf: worker_processes",
            "__main__.render_configs (its log line)",
            "settings.pids.need (the pids limit)",
        ),
    ),
    Setting(
        "NGINX_WORKER_CONNECTIONS",
        default=defaults.nginx_connections,
        default_doc="8192 in all, shared by the workers (computed)",
        form="a whole number of connections per nginx worker from 64 to 65535",
        parse=whole(64, 65535),
        doc="Connections each nginx worker may hold (idle and slow ones included).",
        enforced=(
            "nginx.conf: worker_connections",
            "settings.resolve.derived (NGINX_OPEN_FILES)",
            "nginx.conf: worker_rlimit_nofile",
        ),
    ),
    Setting(
        "QUEUE_SIZE",
        default=defaults.queue,
        default_doc="4 per worker thread, at least 64; 64 per process with `gevent` (computed)",
        form="a whole number of waiting requests from 0 to 100000",
        parse=whole(0, 100000),
        doc=("Requests that may wait for a busy uWSGI; beyond them, new ones get a fast 503 with "
             "`Retry-After`."),
        enforced=(
            "settings.resolve.derived (UPSTREAM_MAX_CONNS, UWSGI_LISTEN)",
            "start.render.upstream_servers (as `UPSTREAM_MAX_CONNS`: max_conns)",
            "app.ini: listen",
            "sidecars.metrics.main (metrics.Collector)",
            "__main__.render_configs (its log line)",
        ),
    ),
    Setting(
        "CONNECTIONS_PER_CLIENT",
        default=defaults.per_client,
        default_doc="what uWSGI serves at once plus `QUEUE_SIZE` (computed)",
        form="a whole number of connections from 1 to 1000000",
        parse=whole(1, 1000000),
        doc=("Requests one client address may have in progress at once, counted apart for requests with a "
             "body, static files and the rest; beyond, 503 with `Retry-After`."),
        enforced=(
            "nginx.conf: limit_conn flaskbox_clients",
            "nginx.conf: limit_conn flaskbox_body_clients",
            "nginx-static.conf: limit_conn flaskbox_static_clients",
            "__main__.render_configs (its log line)",
        ),
    ),
    Setting(
        "CLIENT_STREAM_SHARE",
        # 80: 50 event streams from one address (a NAT) still fit 2 CPUs' 64
        # threads, and a fifth stays for everyone else (production.md).
        default="80",
        form="a whole percentage from 1 to 100",
        parse=whole(1, 100),
        doc=("`sync` only: the percentage of all worker threads one client address may hold with answers "
             "that go at its pace (streams, Server-Sent Events, WebSockets); beyond, 503 with "
             "`Retry-After` ([production.md](production.md#slow-readers-and-open-streams))."),
        enforced=(
            "pool.wsgi.from_record",
            "request.outbound.Share (503 past it)",
            "settings.resolve._check_worker_class (gevent: refused)",
        ),
    ),
    Setting(
        "UPLOAD_SPACE",
        default=defaults.upload_space,
        default_doc="half of `RUNTIME_DIR`'s file system (computed)",
        form="a size such as 256m or 1g",
        parse=size_bytes,
        doc=("Disk that request bodies being received may take together; see [Uploads and "
             "/tmp](production.md#uploads-and-tmp)."),
        enforced=(
            "start.body.slots (uploads at once: UPLOAD_SPACE / the body limit)",
            "start.body.said (its log line)",
            "settings.resolve.derived (UPLOAD_SPACE_SET: whose it is, said in that line)",
            "settings.resolve._check_together (it holds one MAX_BODY_SIZE)",
            "start.body.mistakes (an app limit above it)",
        ),
    ),
    Setting(
        "RESPONSE_SPACE",
        default=defaults.response_space,
        default_doc="a quarter of `RUNTIME_DIR`'s file system (computed)",
        form="a size such as 256m or 1g",
        parse=size_bytes,
        doc=("Disk that responses waiting for slow clients may take together; past it, a large response "
             "goes at the client's pace from its worker (never cut). See [Slow clients and large "
             "downloads](production.md#slow-clients-and-large-downloads)."),
        enforced=(
            "nginx.conf: proxy_max_temp_file_size",
            "pool.wsgi.from_record",
            "request.spool.Spool.admits (as its `space`)",
            "request.request.Request._spooling (through the Serve's `spool`: X-Accel-Buffering: no when it "
            "is full)",
        ),
    ),
)
