"""SETTINGS, the one table: each setting's name, default, accepted form and
meaning. Defaults, checks, the usage text and the docs' tables (English
here, Chinese in zh_cn.py) read it; a new setting is one entry here, one in
zh_cn.py, and its use in a template or in the record's readers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import discover, tls, writable
from ..layout import DEBUG, GEVENT, MODES, PRODUCTION, STATIC_PATH_FALLBACK, STATIC_URL_FALLBACK, SYNC
from . import defaults
from .defaults import Context
from .forms import (
    Form,
    absolute_path,
    app_module,
    file_var_names,
    flag,
    host_list,
    ip_address,
    network_list,
    one_of,
    readable_file,
    size_bytes,
    strip_slash,
    url_path,
    whole,
    writable_paths,
)


@dataclass(frozen=True)
class Setting:
    name: str
    # The default: a fixed text, or computed from the mode, the container
    # (host) and the settings before it in the table.
    default: str | Callable[[Context], str]
    form: str
    # The form's function: the typed value, or ValueError.
    parse: Form
    doc: str
    # How the docs state the default; a fixed one states itself.
    default_doc: str = ""
    normalize: Callable[[str], str] = field(default=lambda value: value)
    # "auto" (as tiangolo's image allowed) means the computed default.
    accepts_auto: bool = False

    def __post_init__(self):
        if not self.default_doc:
            if callable(self.default):
                raise ValueError(f"{self.name}: a computed default needs its default_doc")
            object.__setattr__(self, "default_doc", f"`{self.default}`" if self.default else "(empty)")

    def default_for(self, context: Context) -> str:
        return self.default(context) if callable(self.default) else self.default


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "APP_MODE",
        default=PRODUCTION,
        form="production or debug",
        parse=one_of(*MODES),
        doc="`production` or `debug`; `-d` on the command line wins.",
    ),
    Setting(
        "PORT",
        default=lambda context: "5000" if context.mode == DEBUG else "80",
        default_doc="`80` in production, `5000` in debug",
        form="a port number from 1 to 65535",
        parse=whole(1, 65535),
        doc="Port nginx (or the dev server) listens on.",
    ),
    Setting(
        "RUNTIME_DIR",
        default="/tmp/flaskbox",
        form="an absolute directory such as /tmp/flaskbox",
        parse=absolute_path,
        doc="Where the image writes its runtime files; must be writable.",
        normalize=strip_slash,
    ),
    Setting(
        "UWSGI_INI",
        default=lambda context: str(context.host.app_dir / "uwsgi.ini")
        if (context.host.app_dir / "uwsgi.ini").is_file() else "",
        default_doc="`/app/uwsgi.ini` if there is one (computed)",
        form="the path of a readable uWSGI ini file",
        parse=readable_file,
        doc="An extra uWSGI ini, merged after the image's `app.ini` (its values win); its `module` and "
            "`callable` name the app, as in tiangolo's image.",
    ),
    Setting(
        "APP_MODULE",
        default=lambda context: discover.find_module(context.host.app_dir,
                                                     Path(context.values["UWSGI_INI"] or "/nonexistent"))[0],
        default_doc="`wsgi`, `app` or `main`, whichever file `/app` has (computed)",
        form="module, module:name or module:factory(args), e.g. app, flaskr:create_app() or "
             "mypkg.wsgi:application",
        parse=app_module,
        normalize=discover.from_file_name,
        doc=("Your WSGI app, relative to `/app`, in Flask's forms: `module` (Flask finds its `app` or "
             "`create_app`), `module:name`, `module:factory(args)`. Also read from `FLASK_APP` "
             "([your-app.md](your-app.md#how-the-app-is-found))."),
    ),
    Setting(
        "MAX_BODY_SIZE",
        default="10m",
        form="a size such as 512k, 10m or 1g (0 disables the limit)",
        parse=size_bytes,
        doc=("Largest request body, or file in a form (which may add up to 64 KiB of its own fields around "
             "it) (nginx size: `512k`, `10m`, `1g`; `0` = no limit). Larger gets 413. Flask's own "
             "`MAX_CONTENT_LENGTH` applies after it ([your-app.md](your-app.md#uploads-and-their-limits))."),
    ),
    Setting(
        "REQUEST_TIMEOUT",
        default="30",
        form="a whole number of seconds from 1 to 86400",
        parse=whole(1, 86400),
        doc=("Seconds a client may wait for its answer to start, time in the queue included, and then for "
             "each next part of a streamed answer: past it, a request still queued gets 503, a handler "
             "still running 504 (its worker is replaced once its other requests end), a stream gone silent "
             "is cut (visibly). An answer that keeps sending is never cut by it."),
    ),
    Setting(
        "IMPORT_TIMEOUT",
        # Two minutes: an app that loads a large model or warms a cache from
        # local disk imports well within it, and a hang is named while
        # someone still watches the start.
        default="120",
        form="a whole number of seconds from 0 (no limit) to 86400",
        parse=whole(0, 86400),
        doc=("Seconds the app may take to import (its module and factory) at a start or a reload. Past "
             "it, every thread's stack is logged with the line where the import waits, and the start ends "
             "(exit 124; a reload keeps the running code); in debug mode the stacks are shown and the wait "
             "goes on. `0`: no limit ([your-app.md](your-app.md#an-import-that-never-ends))."),
    ),
    Setting(
        "RELOAD_GRACE",
        # Five minutes: a 300 MB export or download to a client at 1 MB/s
        # finishes; the old pool's memory is given back soon after.
        default="300",
        form="a whole number of seconds from 0 to 86400",
        parse=whole(0, 86400),
        doc=("Seconds the requests, downloads and streams in flight at a reload (SIGHUP) have to finish on "
             "the old code while new requests go to the new; past it they are cut, visibly. Event streams "
             "end cleanly at once (browsers reconnect) ([production.md](production.md#reloading-in-place))."),
    ),
    Setting(
        "WORKER_CLASS",
        default=SYNC,
        form="sync or gevent",
        parse=one_of(SYNC, GEVENT),
        doc=("`sync`: one request per worker thread. `gevent`: thousands of streams, Server-Sent Events "
             "and WebSockets per process ([streaming](streaming.md))."),
    ),
    Setting(
        "UWSGI_PROCESSES",
        default=defaults.processes,
        default_doc="2 per CPU; 1 with `gevent` (computed)",
        form="a whole number of processes from 1 to 1024",
        parse=whole(1, 1024),
        doc="uWSGI worker processes. CPUs are the container's quota (`--cpus`), not the host's cores.",
    ),
    Setting(
        "UWSGI_THREADS",
        default=defaults.threads,
        default_doc="`16`; 1 with `gevent` (computed)",
        form="a whole number of threads per process from 1 to 1024",
        parse=whole(1, 1024),
        doc=("Threads per uWSGI process (`sync` only): requests each process serves at once. Each open "
             "stream holds one. `4` saves CPU where the app never waits or streams "
             "([benchmarks](BENCHMARKS.md#profile-of-the-threaded-default))."),
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
    ),
    Setting(
        "NGINX_WORKER_PROCESSES",
        accepts_auto=True,
        default=lambda context: str(context.host.cpus()),
        default_doc="1 per CPU (computed)",
        form="a whole number of nginx workers from 1 to 1024",
        parse=whole(1, 1024),
        doc="nginx worker processes (`auto` means the default).",
    ),
    Setting(
        "NGINX_WORKER_CONNECTIONS",
        default=defaults.nginx_connections,
        default_doc="8192 in all, shared by the workers (computed)",
        form="a whole number of connections per nginx worker from 64 to 65535",
        parse=whole(64, 65535),
        doc="Connections each nginx worker may hold (idle and slow ones included).",
    ),
    Setting(
        "QUEUE_SIZE",
        default=defaults.queue,
        default_doc="4 per worker thread, at least 64; 64 per process with `gevent` (computed)",
        form="a whole number of waiting requests from 0 to 100000",
        parse=whole(0, 100000),
        doc=("Requests that may wait for a busy uWSGI; beyond them, new ones get a fast 503 with "
             "`Retry-After`."),
    ),
    Setting(
        "CONNECTIONS_PER_CLIENT",
        default=defaults.per_client,
        default_doc="what uWSGI serves at once plus `QUEUE_SIZE` (computed)",
        form="a whole number of connections from 1 to 1000000",
        parse=whole(1, 1000000),
        doc=("Requests one client address may have in progress at once, counted apart for requests with a "
             "body, static files and the rest; beyond, 503 with `Retry-After`."),
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
    ),
    Setting(
        "UPLOAD_SPACE",
        default=defaults.upload_space,
        default_doc="half of `RUNTIME_DIR`'s file system (computed)",
        form="a size such as 256m or 1g",
        parse=size_bytes,
        doc=("Disk that request bodies being received may take together; see [Uploads and "
             "/tmp](production.md#uploads-and-tmp)."),
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
    ),
    Setting(
        "URL_PREFIX",
        default="",
        form="a URL path such as /shop (empty: the app is at /)",
        parse=url_path,
        doc=("The path the app is served under behind a proxy (`/shop`): `url_for`, redirects and static "
             "URLs start with it; a trusted proxy's `X-Forwarded-Prefix` wins "
             "([production.md](production.md#under-a-url-prefix))."),
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_ENABLED",
        default="1",
        form="1 (nginx serves STATIC_URL) or 0 (the app does)",
        parse=flag,
        doc="`1`: nginx serves `STATIC_URL` from disk. `0`: those URLs go to the app.",
    ),
    Setting(
        "STATIC_URL",
        default="",
        default_doc=f"the Flask app's `static_url_path`, else `{STATIC_URL_FALLBACK}` (computed)",
        form="a URL path below / such as /static",
        parse=url_path,
        doc="URL prefix nginx serves from `STATIC_PATH`.",
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_PATH",
        default="",
        default_doc=f"the Flask app's `static_folder`, else `{STATIC_PATH_FALLBACK}` (computed)",
        form="an absolute directory such as /app/static",
        parse=url_path,
        doc="Folder of static files.",
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_INDEX",
        default="0",
        form="1 (serve index.html from the static folder at /) or 0",
        parse=flag,
        doc="`1`: `/` is the static folder's `index.html` (tiangolo's image's setting).",
    ),
    Setting(
        "LOG_FORMAT",
        default="text",
        form="text or json",
        parse=one_of("text", "json"),
        doc=("Log format: `text` (one readable line) or `json` (one object per request on stdout, and every "
             "stderr line a JSON object too: [production.md](production.md#logs))."),
    ),
    Setting(
        "METRICS_PORT",
        default="",
        default_doc="(empty: off)",
        form="empty (off) or a port number from 1 to 65535 other than PORT",
        parse=lambda value: None if value == "" else whole(1, 65535)(value),
        doc=("Port for Prometheus metrics at `/metrics` (requests, durations, refusals by reason, workers, "
             "queue): [production.md](production.md#metrics). Empty: off."),
    ),
    Setting(
        "SHARE_PORT",
        default="0",
        form="1 (share PORT, TLS_PORT and METRICS_PORT with another container of this image) or 0",
        parse=flag,
        doc=("`0`: a start refuses (exit 2) a port something already listens on, which on the host network "
             "may be another container. `1`: nginx and the metrics server share their ports with other "
             "flaskbox containers (`reuseport`), for start-first updates on the host network "
             "([swarm.md](swarm.md#on-the-host-network)); the kernel spreads connections between them."),
    ),
    Setting(
        "TRUSTED_PROXIES",
        default="",
        form="IP addresses or CIDRs separated by spaces or commas, e.g. 10.0.0.0/8,192.168.0.0/16",
        parse=network_list,
        doc=("Proxies whose `X-Forwarded-*` headers are believed, and whose other proxy headers "
             "(`X-Script-Name`, ...) reach the app. Empty: none, from anyone."),
    ),
    Setting(
        "ALLOWED_HOSTS",
        default="",
        form=("host names separated by spaces or commas, e.g. example.com,.example.org (a leading dot adds "
              "subdomains)"),
        parse=host_list,
        doc="Host names served; any other `Host` gets 400 from nginx. Empty: any host.",
    ),
    Setting(
        "PRE_START_PATH",
        default="/app/prestart.sh",
        form="an absolute path such as /app/prestart.sh",
        parse=absolute_path,
        doc="A script run with bash before the server starts, if it exists (migrations; tiangolo's name).",
    ),
    Setting(
        "WRITABLE_PATHS",
        default="",
        form="absolute paths under /app (not /app/instance) separated by spaces or commas, a trailing / "
             "for a folder, e.g. /app/.data/ /app/myapp/secret_key",
        parse=writable_paths,
        doc=("Paths next to your code that the app writes (a cache folder, a secret-key file), e.g. "
             "`/app/.data/ /app/myapp/secret_key` (a trailing `/` for a folder): each is kept on the "
             "instance volume, through a link the image makes with `RUN python3 -m flaskbox writable` "
             "([your-app.md](your-app.md#an-app-that-writes-next-to-its-code))."),
        normalize=writable.normalize,
    ),
    Setting(
        "FILE_VARS_IGNORE",
        default="",
        form="variable names ending in _FILE, separated by spaces or commas, e.g. LOG_FILE,PID_FILE",
        parse=file_var_names,
        doc=("`*_FILE` variables of your app's own that hold a path (`LOG_FILE`), left alone: any other "
             "`VAR_FILE` gives the app `VAR` with the file's contents "
             "([configuration.md](configuration.md#secrets-as-files))."),
    ),
    Setting(
        "ENTRYPOINT_QUIET_LOGS",
        default="0",
        form="1 (quiet) or 0",
        parse=flag,
        doc="`1` silences the entry-point's info lines; errors are always printed.",
    ),
    Setting(
        "DEBUG_RELOADER",
        default="inotify",
        form="inotify (file events) or poll (a scan every 0.5 s, for Docker Desktop)",
        parse=one_of("inotify", "poll"),
        doc=("Debug mode: `inotify` restarts on file events; `poll` looks for changes every 0.5 s (Docker "
             "Desktop)."),
    ),
    Setting(
        "DEBUG_HOST",
        default=defaults.debug_host,
        default_doc="`127.0.0.1` on the host's network (`--network host`), else `0.0.0.0` (computed)",
        form="an IP address such as 127.0.0.1 or 0.0.0.0",
        parse=ip_address,
        doc=("Debug mode: the address the dev server listens on. On the host's network it stays on this "
             "machine unless set to `0.0.0.0`; in a container network it must be `0.0.0.0` for `-p` to reach "
             "it ([develop.md](develop.md#who-can-reach-the-debugger))."),
    ),
    Setting(
        "INSTALL_ON_START",
        default="0",
        form="1 (install /app/requirements.txt and requirements_os.txt at start) or 0",
        parse=flag,
        doc=("Debug mode: `1` installs `/app/requirements.txt` and `/app/requirements_os.txt` at start "
             "([develop.md](develop.md#installing-packages-at-start-install_on_start1))."),
    ),
    # --- TLS at the edge (tls.py checks the files and renders nginx's lines) ---
    Setting(
        "TLS_CERT",
        default="",
        form="an absolute path such as /etc/tls/tls.crt (letters, digits and ._~+@- in its names)",
        parse=tls.file_path,
        doc=("The certificate (PEM, then its intermediates): with `TLS_KEY`, nginx serves HTTPS and "
             "HTTP/2 on `TLS_PORT` beside `PORT`; re-read on SIGHUP "
             "([production.md](production.md#https-and-http2))."),
    ),
    Setting(
        "TLS_KEY",
        default="",
        form="an absolute path such as /etc/tls/tls.key (letters, digits and ._~+@- in its names)",
        parse=tls.file_path,
        doc="The certificate's private key (PEM, not encrypted); set with `TLS_CERT`.",
    ),
    Setting(
        "TLS_PORT",
        # HTTPS's own port, as PORT is HTTP's: Docker lets any user bind it
        # in the container's network namespace; with --network host, 8443.
        default="443",
        form="a port number from 1 to 65535, other than PORT",
        parse=whole(1, 65535),
        doc="Port nginx serves HTTPS on, when `TLS_CERT` and `TLS_KEY` are set.",
    ),
    Setting(
        "TLS_REDIRECT",
        default="0",
        form="1 (plain HTTP is redirected to HTTPS) or 0",
        parse=flag,
        doc=("`1`: plain HTTP gets a 308 redirect to HTTPS, except the health probes (`/-/healthy`, "
             "`/-/alive`) and requests from `TRUSTED_PROXIES`."),
    ),
    Setting(
        "COMPRESS_APP_RESPONSES",
        default="1",
        form="1 (nginx gzips the app's text answers) or 0 (static files only)",
        parse=flag,
        doc=("`1`: the app's text answers are gzipped for clients that ask, over HTTP and HTTPS. `0`: only "
             "static files are, for pages that hold a secret and echo input (BREACH: "
             "[production.md](production.md#compression))."),
    ),
    Setting(
        "HSTS_MAX_AGE",
        # A year: browsers then never try plain HTTP for this host (no
        # includeSubDomains: other hosts under it may not have TLS).
        default="31536000",
        form="a whole number of seconds from 0 (no header) to 999999999",
        parse=tls.max_age,
        doc=("`Strict-Transport-Security: max-age=...` on HTTPS responses only (the app's own header "
             "wins); `0`: none."),
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
