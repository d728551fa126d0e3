"""Every setting, once: its default, its accepted form, its modes, its doc.

SETTINGS is the one table. Defaults, validation, the usage text, the README
check and the rendered configs all read it; a new setting is one entry here,
one README row, and its use in a template.

resolve() turns the environment into checked values: it fills in defaults
(some computed from the container, see host.py), refuses anything outside a
setting's form with exit code 2 and a message naming the variable and the
form, and adds the derived numbers the configs need (LIMITS and derived()).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import discover, writable
from .host import Host

PRODUCTION, DEBUG = "production", "debug"
MODES = (PRODUCTION, DEBUG)
BOTH = MODES

# Environment variable in which the first pass records the defaults it filled
# in, so that the pass after the hooks can tell a default (recomputed, since
# its inputs may have changed) from a value a hook set.
DEFAULTS_RECORD = "FLASKBOX_DEFAULTS"


class SettingError(Exception):
    """A setting outside its form; the message says which and how to fix it."""


# --- accepted forms ----------------------------------------------------------

SIZE = re.compile(r"^([0-9]{1,12})([kKmMgG]?)$")
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def size_bytes(value: str) -> int:
    """An nginx size (512k, 10m, 1g, 4096) in bytes."""
    number, unit = SIZE.match(value).groups()
    return int(number) * SIZE_UNITS[unit.lower()]


def whole(low: int, high: int) -> Callable[[str], bool]:
    return lambda value: value.isdigit() and len(value) <= 7 and low <= int(value) <= high


def one_of(*choices: str) -> Callable[[str], bool]:
    return lambda value: value in choices


def matches(pattern: str) -> Callable[[str], bool]:
    regex = re.compile(pattern)
    return lambda value: regex.fullmatch(value) is not None


def words(value: str) -> list[str]:
    """Items of a list setting, separated by commas and/or spaces."""
    return [item for item in re.split(r"[,\s]+", value) if item]


def network_list(value: str) -> bool:
    try:
        for item in words(value):
            ipaddress.ip_network(item, strict=False)
    except ValueError:
        return False
    return True


# A host name as nginx's `map ... { hostnames; }` matches it: a name, or a
# leading "*." (subdomains only) or "." (the name and its subdomains); or an
# IP address literal.
HOST_PATTERN = re.compile(r"^(\*\.|\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def host_list(value: str) -> bool:
    for item in words(value.lower()):
        if HOST_PATTERN.match(item):
            continue
        try:
            ipaddress.ip_address(item.strip("[]"))
        except ValueError:
            return False
    return True


URL_PATH = r"(/[A-Za-z0-9._~-]+)+"
MODULE = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"


def strip_slash(value: str) -> str:
    """"/static/" means /static; a lone "/" is left for the check to refuse."""
    return value.rstrip("/") if len(value) > 1 else value


# --- the table ---------------------------------------------------------------

@dataclass
class Context:
    """What a computed default may look at: the mode, the container, the
    environment, and the settings before it in the table."""

    mode: str
    host: Host
    env: Mapping[str, str]
    values: dict[str, str]


@dataclass(frozen=True)
class Setting:
    name: str
    # The default: a fixed text, or computed from the mode, the container
    # (host) and the settings before it in the table.
    default: str | Callable[[Context], str]
    # How the README states the default (for a fixed one, `value`).
    default_doc: str
    form: str
    check: Callable[[str], bool]
    modes: tuple[str, ...]
    doc: str
    normalize: Callable[[str], str] = field(default=lambda value: value)
    # "auto" (as tiangolo's image allowed) means the computed default.
    accepts_auto: bool = False

    def default_for(self, context: Context) -> str:
        return self.default(context) if callable(self.default) else self.default


def fixed(value: str) -> str:
    return f"`{value}`" if value else "(empty)"


SYNC, GEVENT = "sync", "gevent"


def capacity(values: Mapping[str, str]) -> int:
    """Requests uWSGI serves at once: a thread each in sync mode, up to
    WORKER_CONNECTIONS per process in gevent mode."""
    gevent = values["WORKER_CLASS"] == GEVENT
    per_process = values["WORKER_CONNECTIONS"] if gevent else values["UWSGI_THREADS"]
    return int(values["UWSGI_PROCESSES"]) * int(per_process)


def _processes(context):
    # gevent: one process, which holds thousands of connections. Socket.IO
    # and any other in-process session state then need no sticky routing;
    # more processes get it by client address (render.py, upstreams).
    if context.values["WORKER_CLASS"] == GEVENT:
        return "1"
    # sync: 2 processes per CPU, so that each CPU has a second interpreter
    # (its own GIL) ready while one waits; UWSGI_THREADS threads in each.
    # At most 32 on a big host.
    return str(min(2 * context.host.cpus(), 32))


def _threads(context):
    # sync: 16 threads per process. Most of a real app's time is spent
    # waiting (a database, an API, a slow phone, an open event stream), and
    # a waiting thread holds no CPU: with one thread per process, four waits
    # filled the pool (docs/BENCHMARKS.md, "Waiting"). REQUEST_TIMEOUT stays
    # per request (guards.Watchdog). gevent: one thread, by definition.
    return "1" if context.values["WORKER_CLASS"] == GEVENT else "16"


def _runtime_space(context, share: int) -> str:
    # 1/share of RUNTIME_DIR's file system; on a tmpfs (memory), of the
    # container's memory limit too, since that is where it is held.
    host = context.host
    mount = host.mount_of(context.values["RUNTIME_DIR"])
    if mount is None:
        return "1g"
    space = mount.size
    if mount.fstype == "tmpfs" and host.memory_limit():
        space = min(space, host.memory_limit())
    return f"{max(space // share, 1 << 20) >> 20}m"


def _queue(context):
    # Requests waiting for a free uWSGI thread, beyond those being served:
    # 4 per thread, at least 64. At 4 per thread a request that finds the
    # queue full would wait behind 4 others on each thread: with handlers
    # of 50-200 ms that is 0.2-0.8 s, past which a fast 503 with Retry-After
    # serves a client better than waiting (and REQUEST_TIMEOUT bounds any
    # wait: serve.py). The floor of 64 keeps a burst of 64 concurrent
    # requests (a page's assets, a load test with 64 connections) queued
    # rather than refused on small containers.
    # gevent: a request waits only once WORKER_CONNECTIONS are taken, which
    # a queue cannot fix; 64 per process absorbs a reconnect storm.
    values = context.values
    if values["WORKER_CLASS"] == GEVENT:
        return str(min(64 * int(values["UWSGI_PROCESSES"]), 100000))
    return str(min(max(64, 4 * capacity(values)), 100000))


def _per_client(context):
    # What uWSGI can hold: busy workers plus the queue. One address may fill
    # it (a load test from one machine, or a front proxy whose address is
    # not in TRUSTED_PROXIES, is never throttled below the container's
    # capacity; once it is full everyone gets a fast 503), and holds no more
    # than that of nginx's connections.
    values = context.values
    return str(min(capacity(values) + int(values["QUEUE_SIZE"]), 1000000))


def _nginx_connections(context):
    # NGINX_CONNECTIONS_TOTAL shared by the workers; two open files each
    # (the client's and uWSGI's) must fit the hard limit on open files.
    connections = -(-NGINX_CONNECTIONS_TOTAL // int(context.values["NGINX_WORKER_PROCESSES"]))
    files = context.host.open_files_limit()
    return str(max(64, min(connections, (files - 64) // 2)))


def _upload_space(context):
    # Half of RUNTIME_DIR's room for request bodies being received...
    return _runtime_space(context, 2)


def _response_space(context):
    # ...and a quarter for responses waiting for slow clients, so that the
    # two together never fill it.
    return _runtime_space(context, 4)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "APP_MODE",
        default=PRODUCTION,
        default_doc=fixed(PRODUCTION),
        form="production or debug",
        check=one_of(*MODES),
        modes=BOTH,
        doc="`production` or `debug`; `-d` on the command line wins.",
    ),
    Setting(
        "PORT",
        default=lambda context: "5000" if context.mode == DEBUG else "80",
        default_doc="`80` in production, `5000` in debug",
        form="a port number from 1 to 65535",
        check=whole(1, 65535),
        modes=BOTH,
        doc="Port nginx (or the dev server) listens on.",
    ),
    Setting(
        "RUNTIME_DIR",
        default="/tmp/flaskbox",
        default_doc=fixed("/tmp/flaskbox"),
        form="an absolute directory such as /tmp/flaskbox",
        check=matches(r"(/[A-Za-z0-9._~-]+)+"),
        modes=BOTH,
        doc="Where the image writes its runtime files; must be writable.",
        normalize=strip_slash,
    ),
    Setting(
        "UWSGI_INI",
        default=lambda context: str(context.host.app_dir / "uwsgi.ini")
        if (context.host.app_dir / "uwsgi.ini").is_file() else "",
        default_doc="`/app/uwsgi.ini` if there is one (computed)",
        form="the path of a readable uWSGI ini file",
        check=lambda value: True,
        modes=(PRODUCTION,),
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
        check=discover.is_valid,
        modes=BOTH,
        doc=("Your WSGI app, relative to `/app`, in Flask's forms: `module` (Flask finds its `app` or "
             "`create_app`), `module:name`, `module:factory(args)`. Also read from `FLASK_APP` "
             "([your-app.md](your-app.md#how-the-app-is-found))."),
    ),
    Setting(
        "MAX_BODY_SIZE",
        default="10m",
        default_doc=fixed("10m"),
        form="a size such as 512k, 10m or 1g (0 disables the limit)",
        check=matches(SIZE.pattern[1:-1]),
        modes=(PRODUCTION,),
        doc="Largest request body (nginx size: `512k`, `10m`, `1g`; `0` = no limit). Larger gets 413.",
    ),
    Setting(
        "REQUEST_TIMEOUT",
        default="30",
        default_doc=fixed("30"),
        form="a whole number of seconds from 1 to 86400",
        check=whole(1, 86400),
        modes=(PRODUCTION,),
        doc=("Seconds a client may wait for its answer to start, time in the queue included: past it, a "
             "request still queued gets 503, a handler still running 504 (its worker is replaced once its "
             "other requests end)."),
    ),
    Setting(
        "WORKER_CLASS",
        default=SYNC,
        default_doc=fixed(SYNC),
        form="sync or gevent",
        check=one_of(SYNC, GEVENT),
        modes=(PRODUCTION,),
        doc=("`sync`: one request per worker thread. `gevent`: thousands of streams, Server-Sent Events "
             "and WebSockets per process ([streaming](streaming.md))."),
    ),
    Setting(
        "UWSGI_PROCESSES",
        default=_processes,
        default_doc="2 per CPU; 1 with `gevent` (computed)",
        form="a whole number of processes from 1 to 1024",
        check=whole(1, 1024),
        modes=(PRODUCTION,),
        doc="uWSGI worker processes. CPUs are the container's quota (`--cpus`), not the host's cores.",
    ),
    Setting(
        "UWSGI_THREADS",
        default=_threads,
        default_doc="`16`; 1 with `gevent` (computed)",
        form="a whole number of threads per process from 1 to 1024",
        check=whole(1, 1024),
        modes=(PRODUCTION,),
        doc="Threads per uWSGI process (`sync` only): requests each process serves at once.",
    ),
    Setting(
        "WORKER_CONNECTIONS",
        # gunicorn's name for the same thing. An open stream costs ~30 KB in
        # uWSGI and ~17 KB in nginx, its 16 KB buffer included (measured with
        # 1500 open: +43 MB and +26 MB RSS), so the 1800 that may stream
        # (stream_slots) take ~85 MB; nginx's 8192 connection slots hold
        # them twice over (a stream takes two: the client's and uWSGI's).
        default="2000",
        default_doc=fixed("2000"),
        form="a whole number of connections per process from 1 to 100000",
        check=whole(1, 100000),
        modes=(PRODUCTION,),
        doc="`gevent` only: requests, streams and WebSockets each process holds at once.",
    ),
    Setting(
        "STREAM_IDLE_TIMEOUT",
        # Longer than the idle timeouts of common load balancers (AWS ALB 60 s,
        # Cloudflare 100 s), so apps that keep streams alive for those pass
        # here too; short enough that a stream whose producer hung is freed
        # in two minutes.
        default="120",
        default_doc=fixed("120"),
        form="a whole number of seconds from 1 to 86400",
        check=whole(1, 86400),
        modes=(PRODUCTION,),
        doc=("`gevent` only: seconds a stream or WebSocket may send nothing before it is closed (a stream "
             "ends cleanly; EventSource reconnects)."),
    ),
    Setting(
        "STREAM_MAX_DURATION",
        # An hour: long enough for any LLM answer or upload progress feed;
        # short enough that long-lived clients reconnect (EventSource and
        # Socket.IO do so by themselves) and so spread over new containers.
        default="3600",
        default_doc=fixed("3600"),
        form="a whole number of seconds from 0 (no limit) to 604800",
        check=whole(0, 604800),
        modes=(PRODUCTION,),
        doc="`gevent` only: seconds a stream or WebSocket may last in all (`0`: no limit); then it ends "
            "cleanly.",
    ),
    Setting(
        "NGINX_WORKER_PROCESSES",
        accepts_auto=True,
        default=lambda context: str(context.host.cpus()),
        default_doc="1 per CPU (computed)",
        form="a whole number of nginx workers from 1 to 1024",
        check=whole(1, 1024),
        modes=(PRODUCTION,),
        doc="nginx worker processes (`auto` means the default).",
    ),
    Setting(
        "NGINX_WORKER_CONNECTIONS",
        default=_nginx_connections,
        default_doc="8192 in all, shared by the workers (computed)",
        form="a whole number of connections per nginx worker from 64 to 65535",
        check=whole(64, 65535),
        modes=(PRODUCTION,),
        doc="Connections each nginx worker may hold (idle and slow ones included).",
    ),
    Setting(
        "QUEUE_SIZE",
        default=_queue,
        default_doc="4 per worker thread, at least 64; 64 per process with `gevent` (computed)",
        form="a whole number of waiting requests from 0 to 100000",
        check=whole(0, 100000),
        modes=(PRODUCTION,),
        doc=("Requests that may wait for a busy uWSGI; beyond them, new ones get a fast 503 with "
             "`Retry-After`."),
    ),
    Setting(
        "CONNECTIONS_PER_CLIENT",
        default=_per_client,
        default_doc="what uWSGI serves at once plus `QUEUE_SIZE` (computed)",
        form="a whole number of connections from 1 to 1000000",
        check=whole(1, 1000000),
        modes=(PRODUCTION,),
        doc=("Requests one client address may have in progress at once, counted apart for requests with a "
             "body, static files and the rest; beyond, 503 with `Retry-After`."),
    ),
    Setting(
        "UPLOAD_SPACE",
        default=_upload_space,
        default_doc="half of `RUNTIME_DIR`'s file system (computed)",
        form="a size such as 256m or 1g",
        check=matches(SIZE.pattern[1:-1]),
        modes=(PRODUCTION,),
        doc=("Disk that request bodies being received may take together; see [Uploads and "
             "/tmp](production.md#uploads-and-tmp)."),
    ),
    Setting(
        "RESPONSE_SPACE",
        default=_response_space,
        default_doc="a quarter of `RUNTIME_DIR`'s file system (computed)",
        form="a size such as 256m or 1g",
        check=matches(SIZE.pattern[1:-1]),
        modes=(PRODUCTION,),
        doc=("Disk that responses waiting for slow clients may take together; past it, a large response "
             "goes at the client's pace from its worker (never cut). See [Slow clients and large "
             "downloads](production.md#slow-clients-and-large-downloads)."),
    ),
    Setting(
        "URL_PREFIX",
        default="",
        default_doc=fixed(""),
        form="a URL path such as /shop (empty: the app is at /)",
        check=lambda value: value == "" or re.fullmatch(URL_PATH, value) is not None,
        modes=BOTH,
        doc=("The path the app is served under behind a proxy (`/shop`): `url_for`, redirects and static "
             "URLs start with it; a trusted proxy's `X-Forwarded-Prefix` wins "
             "([production.md](production.md#under-a-url-prefix))."),
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_ENABLED",
        default="1",
        default_doc=fixed("1"),
        form="1 (nginx serves STATIC_URL) or 0 (the app does)",
        check=one_of("0", "1"),
        modes=(PRODUCTION,),
        doc="`1`: nginx serves `STATIC_URL` from disk. `0`: those URLs go to the app.",
    ),
    Setting(
        "STATIC_URL",
        default="",
        default_doc="the Flask app's `static_url_path`, else `/static` (computed)",
        form="a URL path below / such as /static",
        check=lambda value: value == "" or re.fullmatch(URL_PATH, value) is not None,
        modes=(PRODUCTION,),
        doc="URL prefix nginx serves from `STATIC_PATH`.",
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_PATH",
        default="",
        default_doc="the Flask app's `static_folder`, else `/app/static` (computed)",
        form="an absolute directory such as /app/static",
        check=lambda value: value == "" or re.fullmatch(URL_PATH, value) is not None,
        modes=(PRODUCTION,),
        doc="Folder of static files.",
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_INDEX",
        default="0",
        default_doc=fixed("0"),
        form="1 (serve index.html from the static folder at /) or 0",
        check=one_of("0", "1"),
        modes=(PRODUCTION,),
        doc="`1`: `/` is the static folder's `index.html` (tiangolo's image's setting).",
    ),
    Setting(
        "LOG_FORMAT",
        default="text",
        default_doc=fixed("text"),
        form="text or json",
        check=one_of("text", "json"),
        modes=(PRODUCTION,),
        doc="Access log format: `text` (one readable line) or `json` (one object per request).",
    ),
    Setting(
        "TRUSTED_PROXIES",
        default="",
        default_doc=fixed(""),
        form="IP addresses or CIDRs separated by spaces or commas, e.g. 10.0.0.0/8,192.168.0.0/16",
        check=network_list,
        modes=(PRODUCTION,),
        doc="Proxies whose `X-Forwarded-*` headers are believed. Empty: none are, from anyone.",
    ),
    Setting(
        "ALLOWED_HOSTS",
        default="",
        default_doc=fixed(""),
        form=("host names separated by spaces or commas, e.g. example.com,.example.org (a leading dot adds "
              "subdomains)"),
        check=host_list,
        modes=(PRODUCTION,),
        doc="Host names served; any other `Host` gets 400 from nginx. Empty: any host.",
    ),
    Setting(
        "PRE_START_PATH",
        default="/app/prestart.sh",
        default_doc=fixed("/app/prestart.sh"),
        form="an absolute path such as /app/prestart.sh",
        check=matches(r"(/[A-Za-z0-9._~-]+)+"),
        modes=BOTH,
        doc="A script run with bash before the server starts, if it exists (migrations; tiangolo's name).",
    ),
    Setting(
        "WRITABLE_PATHS",
        default="",
        default_doc=fixed(""),
        form="absolute paths under /app (not /app/instance) separated by spaces or commas, a trailing / "
             "for a folder, e.g. /app/.data/ /app/myapp/secret_key",
        check=writable.valid,
        modes=BOTH,
        doc=("Paths next to your code that the app writes (a cache folder, a secret-key file), e.g. "
             "`/app/.data/ /app/myapp/secret_key` (a trailing `/` for a folder): each is kept on the "
             "instance volume, through a link the image makes with `RUN python3 -m flaskbox writable` "
             "([your-app.md](your-app.md#an-app-that-writes-next-to-its-code))."),
        normalize=writable.normalize,
    ),
    Setting(
        "ENTRYPOINT_QUIET_LOGS",
        default="0",
        default_doc=fixed("0"),
        form="1 (quiet) or 0",
        check=one_of("0", "1"),
        modes=BOTH,
        doc="`1` silences the entry-point's info lines; errors are always printed.",
    ),
    Setting(
        "DEBUG_RELOADER",
        default="inotify",
        default_doc=fixed("inotify"),
        form="inotify (file events) or poll (a scan every 0.5 s, for Docker Desktop)",
        check=one_of("inotify", "poll"),
        modes=(DEBUG,),
        doc=("Debug mode: `inotify` restarts on file events; `poll` looks for changes every 0.5 s (Docker "
             "Desktop)."),
    ),
    Setting(
        "INSTALL_ON_START",
        default="0",
        default_doc=fixed("0"),
        form="1 (install /app/requirements.txt and requirements_os.txt at start) or 0",
        check=one_of("0", "1"),
        modes=BOTH,
        doc=("Debug mode: `1` installs `/app/requirements.txt` and `/app/requirements_os.txt` at start "
             "([develop.md](develop.md#installing-packages-at-start-install_on_start1))."),
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}

# uWSGI options the entry-point must not pass on from UWSGI_* variables:
# the ones uWSGI sets for its own children, and the table's own.
# Other names for settings: tiangolo/uwsgi-nginx-flask's, and Flask's own.
ALIASES = {"LISTEN_PORT": "PORT", "NGINX_MAX_UPLOAD": "MAX_BODY_SIZE", "FLASK_APP": "APP_MODULE"}
ALIAS_REASONS = {"LISTEN_PORT": "tiangolo's image", "NGINX_MAX_UPLOAD": "tiangolo's image",
                 "FLASK_APP": "the flask command's"}
# tiangolo's variables with no flaskbox equivalent: refused, saying what to use.
REFUSED = {
    "NGINX_WORKER_OPEN_FILES": "nginx gets two open files per connection; "
                               "set NGINX_WORKER_CONNECTIONS instead",
}

UWSGI_INTERNAL = {"UWSGI_RELOADS", "UWSGI_VASSALS_DIR", "UWSGI_BROODLORD_NUM", "UWSGI_JAIL_PID",
                  "UWSGI_ORIGINAL_PROC_NAME"}


# --- limits that are not settings -------------------------------------------

# How long a `docker stop` may take, defined once: nginx drains requests in
# flight for up to DRAIN seconds (worker_shutdown_timeout), then uWSGI's
# workers get MERCY seconds (worker-reload-mercy); each server is killed one
# second after its own limit. 5 + 1 + 2 + 1 = 9 s, inside docker's default
# 10 s grace and the Deployment's grace period (tests check both).
STOP_DRAIN_SECONDS = 5
STOP_MERCY_SECONDS = 2
STOP_KILL_AFTER_SECONDS = 1
# Streams and WebSockets never finish by themselves, so before nginx drains,
# each uWSGI worker gets this signal and ends its own cleanly (streams.py).
# Ignored by default, and unused by uWSGI's workers (not SIGWINCH: a Python
# handler for it never ran in a worker, measured).
STOP_STREAMS_SIGNAL = "URG"

# Request headers. nginx takes a request line or header line of at most
# HEADER_LINE bytes and HEADER_BUFFERS such lines' worth of header in all
# (plus the first 1 KB buffer); beyond, it answers 414 or 400 itself.
# uWSGI holds a request's variables in one 64 KB block (uwsgi.buffer_size is
# 16 bits); what does not fit is a 502 ("unable to add ... to uwsgi packet").
# A header line of n bytes on the wire ("ab:\r\n", 5, at least, with a name
# of its own: uWSGI joins lines of one name) becomes "HTTP_AB" plus two
# 2-byte lengths there: n + 6 bytes. So the variables of a header of W bytes
# in L lines take W + 6 L, plus the request line twice over (REQUEST_URI,
# then PATH_INFO or QUERY_STRING) and the ~1.5 KB nginx and uWSGI add.
# - nginx with max_headers (upstream's; Debian 12 backports it, default
#   1000) bounds L: 4 buffers, nginx's own default, as SSO cookies of near
#   32 KB need: 1 KB + 4 x 8 KB + 6 x MAX_HEADER_LINES + 8 KB of request
#   line again + 1.5 KB = 49 KB.
# - without it, L is bounded only by W: 4 buffers of 2- and 3-byte names
#   hold ~6700 lines, 74 KB of variables (computed), a 502; 3 buffers
#   stay under 56 KB.
HEADER_LINE = 8 * 1024
HEADER_FIRST_BUFFER = 1024
MAX_HEADER_LINES = 1000
UWSGI_BUFFER_SIZE = 65535


def header_buffers(host: Host) -> int:
    """nginx's large header buffers: its default, 4, where it bounds the
    number of header lines; else 3 (see above)."""
    return 4 if host.nginx_counts_headers() else 3


def uwsgi_max_vars(buffers: int) -> int:
    """The most variables a request can make: one per 4-byte header line,
    plus the ones uWSGI and nginx add."""
    return (HEADER_FIRST_BUFFER + buffers * HEADER_LINE) // 4 + 64


# nginx connection slots, across all its workers: each costs ~0.42 KB of
# RSS from the start (measured: 2.9 MB per worker at 1024 slots, 6.0 MB at
# 8192, 9.5 MB at 16384). 8192 leaves room for thousands of idle or slow
# connections (3000 half-sent headers from one address filled the old
# 2 x 1024 and locked everyone else out until they timed out; now they are
# served in 8 ms) for about 3 MB more than before.
NGINX_CONNECTIONS_TOTAL = 8192
# Of those, requests with a body may take half, and so may static downloads
# (nginx.conf, per-client limits): trickled bodies or slow readers from many
# addresses then leave the other half to everything else.
BODY_SLOTS = NGINX_CONNECTIONS_TOTAL // 2

# Bodies past this many bytes are written to RUNTIME_DIR while they arrive
# (client_body_buffer_size); nginx.conf counts a request as an upload, which
# takes an UPLOAD_SPACE slot, when its Content-Length has 5 digits or more
# (10000 bytes and up, a conservative match for "over 16 KB") or it is chunked.
BODY_BUFFER = "16k"

def stream_slots(worker_connections: int) -> int:
    """With gevent, how many of a process's WORKER_CONNECTIONS streams and
    WebSockets may hold at once. A tenth stays for ordinary requests: once
    streams held every slot, ordinary requests waited behind them (measured:
    2000 streams on 2000 slots, ordinary p99 3.9 s); beyond this, a new
    stream or WebSocket gets 503 with Retry-After (serve.py)."""
    return worker_connections - worker_connections // 10


# gevent and its dependencies (lib/gevent-requirements.txt), on sys.path with
# WORKER_CLASS=gevent only (app.ini): Flask-SocketIO and python-engineio pick
# gevent whenever they can import it, which breaks them under the sync
# workers and the dev server.
GEVENT_SITE = Path("/opt/venv/gevent")

# The sample app's fingerprint, written when the default image is built
# (Dockerfile, stage sample).
SAMPLE_FINGERPRINT = Path("/etc/flaskbox/sample-app.sha256")

# Retry-After, in seconds, on 503 answers to overload and limits.
RETRY_AFTER_SECONDS = 5

# nginx's buffers for one response from uWSGI (proxy_buffers): a response up
# to RESPONSE_MEMORY_BYTES frees its worker at once without touching disk;
# a larger one is spooled to RUNTIME_DIR within RESPONSE_SPACE (serve.Spool).
PROXY_BUFFER_BYTES = 16 * 1024
PROXY_BUFFERS = 16
RESPONSE_MEMORY_BYTES = (PROXY_BUFFERS + 1) * PROXY_BUFFER_BYTES
# How long nginx waits for a client that takes nothing of its response
# (send_timeout); uWSGI waits for nginx 5 s longer (UWSGI_SOCKET_TIMEOUT).
SEND_TIMEOUT_SECONDS = 30

# What a Host (or a trusted proxy's X-Forwarded-Host) may be: a host name
# (letters, digits, `-` and `_`, in dot-separated labels, with an optional
# trailing dot: an absolute name is the same host), an IPv4 address, or an
# IPv6 literal in brackets; then an optional port of 1 to 5 digits. Nothing
# else: no userinfo (`a.example:@evil`), no empty port (`a.example:`), no
# IPv6 zone. nginx.conf refuses any other Host with 400 (this text fills its
# ${HOST_FORM}); serve.py holds X-Forwarded-Host to it.
HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
HOST_FORM = (rf"(?:{HOST_LABEL}(?:\.{HOST_LABEL})*\.?|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\])"
             r"(?::[0-9]{1,5})?")


# --- resolving ---------------------------------------------------------------

@dataclass
class Resolved:
    mode: str
    values: dict[str, str]
    defaulted: dict[str, str]  # the ones filled in by default, with their values
    derived: dict[str, str]
    notes: list[str]  # info lines for the log

    def exports(self) -> dict[str, str]:
        """What the entry-point exports: every setting, the record of
        defaults, and the derived numbers it needs itself."""
        out = dict(self.values)
        # The `flask` command (in hooks, `docker run IMAGE flask ...`) acts
        # on the app the servers serve.
        out["FLASK_APP"] = self.values["APP_MODULE"]
        recorded = {**self.defaulted, "FLASK_APP": out["FLASK_APP"]}
        out[DEFAULTS_RECORD] = json.dumps(recorded, separators=(",", ":"), sort_keys=True)
        for name in ("STOP_DRAIN_SECONDS", "STOP_MERCY_SECONDS", "STOP_KILL_AFTER_SECONDS",
                     "STOP_STREAMS_SIGNAL"):
            out[f"FLASKBOX_{name}"] = self.derived[name]
        return out


def _given(env: Mapping[str, str]) -> dict[str, str]:
    """Settings present in env, minus defaults an earlier pass filled in and
    nobody changed since (they are recomputed: their inputs may have); the
    other names some of them go by (ALIASES) count as theirs."""
    try:
        recorded = json.loads(env.get(DEFAULTS_RECORD) or "{}")
    except ValueError:
        recorded = {}
    given = {name: env[name] for name in [*BY_NAME, *ALIASES]
             if name in env and not (name in recorded and recorded[name] == env[name])}
    for alias, name in ALIASES.items():
        if alias not in given:
            continue
        value = given.pop(alias)
        if name in given and given[name] != value:
            raise SettingError(f"{alias}='{value}' and {name}='{given[name]}' disagree: {alias} is another "
                               f"name for {name} ({ALIAS_REASONS[alias]}); set one of them")
        given.setdefault(name, value)
    for name, advice in REFUSED.items():
        if env.get(name):
            raise SettingError(f"{name}='{env[name]}' is not a flaskbox setting: {advice}")
    return {name: value for name, value in given.items()
            if not (value == "auto" and BY_NAME[name].accepts_auto)}


def resolve(mode: str, env: Mapping[str, str] = os.environ, host: Host | None = None) -> Resolved:
    host = host or Host()
    given = _given(env)
    values: dict[str, str] = {}
    defaulted: dict[str, str] = {}
    context = Context(mode, host, env, values)
    for setting in SETTINGS:
        if setting.name in given:
            value = setting.normalize(given[setting.name])
        else:
            try:
                value = setting.default_for(context)
            except discover.AppError as exc:
                raise SettingError(str(exc)) from exc
            defaulted[setting.name] = value
        if not setting.check(value):
            raise SettingError(f"{setting.name}='{given.get(setting.name, value)}' is not valid: "
                               f"expected {setting.form}")
        values[setting.name] = value
    values["APP_MODE"] = mode
    resolved = Resolved(mode, values, defaulted, {}, [])
    _check_together(resolved, env, host)
    resolved.derived = derived(resolved, host)
    return resolved


def _check_together(resolved: Resolved, env: Mapping[str, str], host: Host) -> None:
    """Rules that involve more than one setting, the mode or the container."""
    values, mode = resolved.values, resolved.mode
    if values["INSTALL_ON_START"] == "1" and mode != DEBUG:
        raise SettingError(
            "INSTALL_ON_START=1 works in debug mode only: production serves what the image was built "
            "with, so add the packages to requirements.txt (or requirements_os.txt) and rebuild")
    if mode == DEBUG and env.get("WERKZEUG_DEBUG_PIN") == "off":
        raise SettingError(
            f"WERKZEUG_DEBUG_PIN=off would let anyone who reaches port {values['PORT']} run code without a "
            "PIN: unset it, or choose a PIN of your own, e.g. WERKZEUG_DEBUG_PIN=314-159-265")
    port, start = int(values["PORT"]), host.unprivileged_port_start()
    if start is not None and port < min(start, 1024):
        raise SettingError(
            f"PORT={port} is below {start}, the lowest port a non-root process may bind here "
            "(net.ipv4.ip_unprivileged_port_start): set PORT=8080 and publish it (-p 8091:8080), "
            "or give the container --sysctl net.ipv4.ip_unprivileged_port_start=0")
    # The sample left in an image built FROM the default one. A mounted /app
    # (the repository's own app/, in debug mode) is the developer's to edit.
    mount = host.mount_of(str(host.app_dir))
    from_image = mount is None or mount.point != str(host.app_dir)
    if "APP_MODULE" in resolved.defaulted and values["APP_MODULE"] == "app" and from_image \
            and discover.is_sample(host.app_dir, SAMPLE_FINGERPRINT):
        others = discover.code_besides_sample(host.app_dir)
        if others:
            raise SettingError(
                f"APP_MODULE is not set, and {host.app_dir}/app.py is flaskbox's sample app, left by the "
                f"image this one was built FROM; your code next to it ({', '.join(others)}) is not what "
                "would be served. Build FROM the app-less image (docker build --target runtime, "
                "docs/your-app.md), or set APP_MODULE")
    nginx_conf = host.app_dir / "nginx.conf"
    if mode == PRODUCTION and nginx_conf.is_file():
        raise SettingError(
            f"found {nginx_conf}, which tiangolo's image put in place of its own nginx.conf; flaskbox keeps "
            "its own (limits, health, logs): move your rules to /app/nginx.d/*.conf (inside `server`) or "
            "/app/nginx.d/http/*.conf (inside `http`), and remove /app/nginx.conf")
    ini = values["UWSGI_INI"]
    if ini and not os.access(ini, os.R_OK):
        raise SettingError(f"UWSGI_INI='{ini}' is not a readable file: mount your ini there "
                           "or unset UWSGI_INI")
    for name, value in env.items():
        if name.startswith("UWSGI_") and "\n" in value:
            raise SettingError(f"{name} holds a line break: uWSGI options are one line")
    if mode == PRODUCTION:
        _check_worker_class(resolved)
    body = size_bytes(values["MAX_BODY_SIZE"])
    space = size_bytes(values["UPLOAD_SPACE"])
    if body and space < body:
        if "UPLOAD_SPACE" not in resolved.defaulted:
            raise SettingError(
                f"UPLOAD_SPACE='{values['UPLOAD_SPACE']}' is smaller than MAX_BODY_SIZE="
                f"{values['MAX_BODY_SIZE']}: not even one upload of the largest allowed size would fit; "
                "raise UPLOAD_SPACE (and the space under RUNTIME_DIR) or lower MAX_BODY_SIZE")
        values["UPLOAD_SPACE"] = values["MAX_BODY_SIZE"]
        resolved.notes.append(
            f"{values['RUNTIME_DIR']} is small: UPLOAD_SPACE raised to MAX_BODY_SIZE "
            f"({values['MAX_BODY_SIZE']}), so one upload at a time; give it more room "
            "(e.g. --tmpfs /tmp:size=256m)")


GEVENT_ONLY = ("WORKER_CONNECTIONS", "STREAM_IDLE_TIMEOUT", "STREAM_MAX_DURATION")


def _check_worker_class(resolved: Resolved) -> None:
    """Settings of one worker class, given with the other: a mistake to say
    out loud rather than ignore."""
    values = resolved.values
    if values["WORKER_CLASS"] == GEVENT:
        if "UWSGI_THREADS" not in resolved.defaulted and values["UWSGI_THREADS"] != "1":
            raise SettingError(
                f"UWSGI_THREADS='{values['UWSGI_THREADS']}' does not apply with WORKER_CLASS=gevent, whose "
                "processes run one thread each: set WORKER_CONNECTIONS for how many requests a process "
                "holds, and unset UWSGI_THREADS")
        return
    for name in GEVENT_ONLY:
        if name not in resolved.defaulted:
            raise SettingError(
                f"{name}='{values[name]}' applies with WORKER_CLASS=gevent only (WORKER_CLASS is "
                f"'{values['WORKER_CLASS']}'): set WORKER_CLASS=gevent, or unset {name}")


def derived(resolved: Resolved, host: Host) -> dict[str, str]:
    """Numbers the configs need that follow from the settings."""
    values = resolved.values
    # nginx opens at most this many connections to uWSGI; one more is shed.
    upstream = capacity(values) + int(values["QUEUE_SIZE"])
    # The kernel's listen queue on uWSGI's socket holds whatever nginx may
    # have open beyond the busy workers; the kernel caps it at somaxconn.
    backlog = max(upstream, 128)
    somaxconn = host.somaxconn()
    if somaxconn is not None and backlog > somaxconn:
        resolved.notes.append(f"net.core.somaxconn is {somaxconn}: uWSGI's listen queue lowered to match")
        backlog = somaxconn
    connections = int(values["NGINX_WORKER_CONNECTIONS"])
    body = size_bytes(values["MAX_BODY_SIZE"])
    # Uploads buffered at once: each may take up to MAX_BODY_SIZE on disk.
    # 0 (no body limit) leaves them unbounded; nginx counts up to 65535.
    uploads = min(size_bytes(values["UPLOAD_SPACE"]) // body, 65535) if body else 0
    return {
        "UPSTREAM_MAX_CONNS": str(upstream),
        "UWSGI_LISTEN": str(backlog),
        "UPSTREAM_TIMEOUT": str(_upstream_timeout(values)),
        # A recycled sync worker (max-requests) finishes the requests its
        # other threads hold, each bounded by REQUEST_TIMEOUT, before the
        # master kills it; a stop has its own, shorter budget (STOP_*).
        "WORKER_RELOAD_MERCY": str(int(values["REQUEST_TIMEOUT"]) + 2
                                   if values["WORKER_CLASS"] == SYNC else STOP_MERCY_SECONDS),
        "SEND_TIMEOUT": str(SEND_TIMEOUT_SECONDS),
        # uWSGI waits for nginx to take a response longer than nginx waits
        # for the client: a slow client is nginx's to judge, never cut here.
        "UWSGI_SOCKET_TIMEOUT": str(SEND_TIMEOUT_SECONDS + 5),
        "PROXY_BUFFER": f"{PROXY_BUFFER_BYTES // 1024}k",
        "PROXY_BUFFERS": str(PROXY_BUFFERS),
        "GEVENT_SITE": str(GEVENT_SITE),
        "NGINX_OPEN_FILES": str(2 * connections + 64),
        "BODY_SLOTS": str(BODY_SLOTS),
        "UPLOAD_SLOTS": str(max(uploads, 1) if body else 0),
        # One address may hold a quarter of the upload slots (at least one),
        # so a single client stalling uploads leaves room for others.
        "UPLOAD_SLOTS_PER_CLIENT": str(max(uploads // 4, 1) if body else 0),
        "HEADER_LINE": f"{HEADER_LINE // 1024}k",
        "HEADER_BUFFERS": str(header_buffers(host)),
        "HEADER_FIRST_BUFFER": f"{HEADER_FIRST_BUFFER // 1024}k",
        "UWSGI_BUFFER_SIZE": str(UWSGI_BUFFER_SIZE),
        "UWSGI_MAX_VARS": str(uwsgi_max_vars(header_buffers(host))),
        "BODY_BUFFER": BODY_BUFFER,
        "RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS),
        "HOST_FORM": HOST_FORM,
        "STOP_DRAIN_SECONDS": str(STOP_DRAIN_SECONDS),
        "STOP_MERCY_SECONDS": str(STOP_MERCY_SECONDS),
        "STOP_KILL_AFTER_SECONDS": str(STOP_KILL_AFTER_SECONDS),
        "STOP_STREAMS_SIGNAL": STOP_STREAMS_SIGNAL,
        "CPUS": str(host.cpus()),
    }


def _upstream_timeout(values: Mapping[str, str]) -> int:
    """How long nginx waits for uWSGI to answer (and, once it streams, for
    its next bytes). sync: 2 s past REQUEST_TIMEOUT, by when the watchdog has
    answered (504) any request a worker took, so what is left is a request
    that never got one: nginx answers 503 (@flaskbox_queue_timeout). gevent:
    5 s past the longer of it and STREAM_IDLE_TIMEOUT, so that uWSGI's own
    answer (504, a stream's clean end) comes first."""
    timeout = int(values["REQUEST_TIMEOUT"])
    if values["WORKER_CLASS"] == GEVENT:
        return max(timeout, int(values["STREAM_IDLE_TIMEOUT"])) + 5
    return timeout + 2


def uwsgi_options(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """UWSGI_<OPTION>=value variables that are not settings of the table, as
    uWSGI's own (option, value) pairs: UWSGI_MAX_REQUESTS -> max-requests."""
    options = []
    for name in sorted(env):
        if name.startswith("UWSGI_") and name not in BY_NAME and name not in UWSGI_INTERNAL \
                and not name.startswith("UWSGI_EMPEROR_"):
            options.append((name[len("UWSGI_"):].lower().replace("_", "-"), env[name]))
    return options
