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

@dataclass(frozen=True)
class Setting:
    name: str
    # The default: a fixed text, or computed from the mode, the container
    # (host) and the settings before it in the table.
    default: str | Callable[[str, Host, Mapping[str, str]], str]
    # How the README states the default (for a fixed one, `value`).
    default_doc: str
    form: str
    check: Callable[[str], bool]
    modes: tuple[str, ...]
    doc: str
    normalize: Callable[[str], str] = field(default=lambda value: value)

    def default_for(self, mode: str, host: Host, values: Mapping[str, str]) -> str:
        return self.default(mode, host, values) if callable(self.default) else self.default


def fixed(value: str) -> str:
    return f"`{value}`" if value else "(empty)"


def _processes(mode, host, values):
    # 2 single-threaded uWSGI processes per CPU. One thread per process
    # keeps REQUEST_TIMEOUT per request: uWSGI 2.0's harakiri timer is per
    # process, and with 2 threads every request on the other thread reset it
    # (a stuck handler under steady traffic was never killed). Measured on 2
    # CPUs (bench/): the same requests/s as 2 processes x 2 threads; the
    # memory cost is in docs/BENCHMARKS.md. At most 32 on a big host.
    return str(min(2 * host.cpus(), 32))


def _queue(mode, host, values):
    # Requests waiting for a free uWSGI worker, beyond those being served:
    # 16 per worker thread, at least 64. At 16 per thread a request that
    # finds the queue full would wait behind 16 others on each thread: with
    # handlers of 50-200 ms that is 0.8-3.2 s, past which a fast 503 with
    # Retry-After serves a client better than waiting. The floor of 64 keeps
    # a burst of 64 concurrent requests (a page's assets, a load test with
    # 64 connections) queued rather than refused on small containers.
    capacity = int(values["UWSGI_PROCESSES"]) * int(values["UWSGI_THREADS"])
    return str(max(64, 16 * capacity))


def _per_client(mode, host, values):
    # What uWSGI can hold: busy workers plus the queue. One address may fill
    # it (a load test from one machine, or a front proxy whose address is
    # not in TRUSTED_PROXIES, is never throttled below the container's
    # capacity; once it is full everyone gets a fast 503), and holds no more
    # than that of nginx's connections.
    capacity = int(values["UWSGI_PROCESSES"]) * int(values["UWSGI_THREADS"])
    return str(capacity + int(values["QUEUE_SIZE"]))


def _upload_space(mode, host, values):
    # Half of RUNTIME_DIR's file system; on a tmpfs (memory), at most half
    # of the container's memory limit too, since that is where it is held.
    mount = host.mount_of(values["RUNTIME_DIR"])
    if mount is None:
        return "1g"
    space = mount.size
    if mount.fstype == "tmpfs" and host.memory_limit():
        space = min(space, host.memory_limit())
    return f"{max(space // 2, 1 << 20) >> 20}m"


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
        default=lambda mode, host, values: "5000" if mode == DEBUG else "80",
        default_doc="`80` in production, `5000` in debug",
        form="a port number from 1 to 65535",
        check=whole(1, 65535),
        modes=BOTH,
        doc="Port nginx (or the dev server) listens on.",
    ),
    Setting(
        "APP_MODULE",
        default="app:app",
        default_doc=fixed("app:app"),
        form="module or module:callable, e.g. app:app or mypkg.wsgi:application",
        check=matches(MODULE + r"(:[A-Za-z_][A-Za-z0-9_]*)?"),
        modes=BOTH,
        doc="`module:callable` of your WSGI app, relative to `/app`.",
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
        doc="Seconds a request may run before its worker is killed and the client gets a 5xx.",
    ),
    Setting(
        "UWSGI_PROCESSES",
        default=_processes,
        default_doc="2 per CPU (computed)",
        form="a whole number of processes from 1 to 1024",
        check=whole(1, 1024),
        modes=(PRODUCTION,),
        doc="uWSGI worker processes. CPUs are the container's quota (`--cpus`), not the host's cores.",
    ),
    Setting(
        "UWSGI_THREADS",
        default="1",
        default_doc=fixed("1"),
        form="a whole number of threads per process from 1 to 1024",
        check=whole(1, 1024),
        modes=(PRODUCTION,),
        doc=("Threads per uWSGI process. Above 1, a request past `REQUEST_TIMEOUT` takes its whole process "
             "(and the other requests in it) down."),
    ),
    Setting(
        "NGINX_WORKER_PROCESSES",
        default=lambda mode, host, values: str(host.cpus()),
        default_doc="1 per CPU (computed)",
        form="a whole number of nginx workers from 1 to 1024",
        check=whole(1, 1024),
        modes=(PRODUCTION,),
        doc="nginx worker processes.",
    ),
    Setting(
        "QUEUE_SIZE",
        default=_queue,
        default_doc="16 per worker thread, at least 64 (computed)",
        form="a whole number of waiting requests from 0 to 100000",
        check=whole(0, 100000),
        modes=(PRODUCTION,),
        doc=("Requests that may wait for a busy uWSGI; beyond them, new ones get a fast 503 with "
             "`Retry-After`."),
    ),
    Setting(
        "CONNECTIONS_PER_CLIENT",
        default=_per_client,
        default_doc="workers plus `QUEUE_SIZE` (computed)",
        form="a whole number of connections from 1 to 1000000",
        check=whole(1, 1000000),
        modes=(PRODUCTION,),
        doc="Requests one client address may have in progress at once; beyond, 503 with `Retry-After`.",
    ),
    Setting(
        "UPLOAD_SPACE",
        default=_upload_space,
        default_doc="half of `RUNTIME_DIR`'s file system (computed)",
        form="a size such as 256m or 1g",
        check=matches(SIZE.pattern[1:-1]),
        modes=(PRODUCTION,),
        doc="Disk that request bodies being received may take together; see Uploads and `/tmp`.",
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
        default="/static",
        default_doc=fixed("/static"),
        form="a URL path below / such as /static",
        check=matches(URL_PATH),
        modes=(PRODUCTION,),
        doc="URL prefix nginx serves from `STATIC_PATH`.",
        normalize=strip_slash,
    ),
    Setting(
        "STATIC_PATH",
        default="/app/static",
        default_doc=fixed("/app/static"),
        form="an absolute directory such as /app/static",
        check=matches(URL_PATH),
        modes=(PRODUCTION,),
        doc="Folder of static files.",
        normalize=strip_slash,
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
        "UWSGI_INI",
        default="",
        default_doc=fixed(""),
        form="the path of a readable uWSGI ini file",
        check=lambda value: True,
        modes=(PRODUCTION,),
        doc="An extra uWSGI ini file, merged after the image's `app.ini` (its values win).",
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
        doc="Debug mode: `1` installs `/app/requirements.txt` and `/app/requirements_os.txt` at start.",
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}

# uWSGI options the entry-point must not pass on from UWSGI_* variables:
# the ones uWSGI sets for its own children, and the table's own.
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

# Request headers. nginx takes a request line or header line of at most
# HEADER_LINE bytes and HEADER_BUFFERS such lines' worth of header in all
# (plus the first 1 KB buffer); beyond, it answers 414 or 400 itself.
# uWSGI holds a request's variables in one 64 KB block (uwsgi.buffer_size is
# 16 bits). A header line of n bytes on the wire ("a:\r\n" at least, 4) becomes
# "HTTP_A" plus two 2-byte lengths there (10), so the worst case grows 2.5x:
# 2.5 x (1 KB + 3 x 8 KB) = 64000 bytes, which leaves 1.5 KB for the variables
# nginx and uWSGI add. With 4 buffers (33 KB) or 16 KB lines, requests nginx
# accepts got 502 "uwsgi request is too big" or "max vec size reached".
HEADER_LINE = 8 * 1024
HEADER_BUFFERS = 3
HEADER_FIRST_BUFFER = 1024
UWSGI_BUFFER_SIZE = 65535
# The most variables such a request can make: one per 4-byte header line,
# plus the ones uWSGI and nginx add.
UWSGI_MAX_VARS = (HEADER_FIRST_BUFFER + HEADER_BUFFERS * HEADER_LINE) // 4 + 64

# nginx connection slots, across all its workers: each costs ~0.42 KB of
# RSS from the start (measured: 2.9 MB per worker at 1024 slots, 6.0 MB at
# 8192, 9.5 MB at 16384). 8192 leaves room for thousands of idle or slow
# connections (3000 half-sent headers from one address filled the old
# 2 x 1024 and locked everyone else out until they timed out; now they are
# served in 8 ms) for about 3 MB more than before.
NGINX_CONNECTIONS_TOTAL = 8192

# Bodies past this many bytes are written to RUNTIME_DIR while they arrive
# (client_body_buffer_size); nginx.conf counts a request as an upload, which
# takes an UPLOAD_SPACE slot, when its Content-Length has 5 digits or more
# (10000 bytes and up, a conservative match for "over 16 KB") or it is chunked.
BODY_BUFFER = "16k"

# Retry-After, in seconds, on 503 answers to overload and limits.
RETRY_AFTER_SECONDS = 5


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
        out[DEFAULTS_RECORD] = json.dumps(self.defaulted, separators=(",", ":"), sort_keys=True)
        for name in ("STOP_DRAIN_SECONDS", "STOP_MERCY_SECONDS", "STOP_KILL_AFTER_SECONDS"):
            out[f"FLASKBOX_{name}"] = self.derived[name]
        return out


def _given(env: Mapping[str, str]) -> dict[str, str]:
    """Settings present in env, minus defaults an earlier pass filled in and
    nobody changed since (they are recomputed: their inputs may have)."""
    try:
        recorded = json.loads(env.get(DEFAULTS_RECORD) or "{}")
    except ValueError:
        recorded = {}
    return {name: env[name] for name in BY_NAME
            if name in env and not (name in recorded and recorded[name] == env[name])}


def resolve(mode: str, env: Mapping[str, str] = os.environ, host: Host | None = None) -> Resolved:
    host = host or Host()
    given = _given(env)
    values: dict[str, str] = {}
    defaulted: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.name in given:
            value = setting.normalize(given[setting.name])
        else:
            value = setting.default_for(mode, host, values)
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
    ini = values["UWSGI_INI"]
    if ini and not os.access(ini, os.R_OK):
        raise SettingError(f"UWSGI_INI='{ini}' is not a readable file: mount your ini there "
                           "or unset UWSGI_INI")
    for name, value in env.items():
        if name.startswith("UWSGI_") and "\n" in value:
            raise SettingError(f"{name} holds a line break: uWSGI options are one line")
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


def derived(resolved: Resolved, host: Host) -> dict[str, str]:
    """Numbers the configs need that follow from the settings."""
    values = resolved.values
    capacity = int(values["UWSGI_PROCESSES"]) * int(values["UWSGI_THREADS"])
    # nginx opens at most this many connections to uWSGI; one more is shed.
    upstream = capacity + int(values["QUEUE_SIZE"])
    # The kernel's listen queue on uWSGI's socket holds whatever nginx may
    # have open beyond the busy workers; the kernel caps it at somaxconn.
    backlog = max(upstream, 128)
    somaxconn = host.somaxconn()
    if somaxconn is not None and backlog > somaxconn:
        resolved.notes.append(f"net.core.somaxconn is {somaxconn}: uWSGI's listen queue lowered to match")
        backlog = somaxconn
    workers = int(values["NGINX_WORKER_PROCESSES"])
    connections = -(-NGINX_CONNECTIONS_TOTAL // workers)
    # Each client connection may hold one to uWSGI too: two files, plus a
    # few for logs and listening sockets.
    files = host.open_files_limit()
    if 2 * connections + 64 > files:
        connections = max(64, (files - 64) // 2)
        resolved.notes.append(f"open files are limited to {files}: "
                              f"{connections} nginx connections per worker")
    body = size_bytes(values["MAX_BODY_SIZE"])
    # Uploads buffered at once: each may take up to MAX_BODY_SIZE on disk.
    # 0 (no body limit) leaves them unbounded; nginx counts up to 65535.
    uploads = min(size_bytes(values["UPLOAD_SPACE"]) // body, 65535) if body else 0
    return {
        "UPSTREAM_MAX_CONNS": str(upstream),
        "UWSGI_LISTEN": str(backlog),
        # nginx waits a little longer than uWSGI's own REQUEST_TIMEOUT, so
        # that uWSGI's answer (a killed worker: 502) comes first.
        "UPSTREAM_TIMEOUT": str(int(values["REQUEST_TIMEOUT"]) + 5),
        "NGINX_WORKER_CONNECTIONS": str(connections),
        "NGINX_OPEN_FILES": str(2 * connections + 64),
        "UPLOAD_SLOTS": str(max(uploads, 1) if body else 0),
        # One address may hold a quarter of the upload slots (at least one),
        # so a single client stalling uploads leaves room for others.
        "UPLOAD_SLOTS_PER_CLIENT": str(max(uploads // 4, 1) if body else 0),
        "HEADER_LINE": f"{HEADER_LINE // 1024}k",
        "HEADER_BUFFERS": str(HEADER_BUFFERS),
        "HEADER_FIRST_BUFFER": f"{HEADER_FIRST_BUFFER // 1024}k",
        "UWSGI_BUFFER_SIZE": str(UWSGI_BUFFER_SIZE),
        "UWSGI_MAX_VARS": str(UWSGI_MAX_VARS),
        "BODY_BUFFER": BODY_BUFFER,
        "RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS),
        "STOP_DRAIN_SECONDS": str(STOP_DRAIN_SECONDS),
        "STOP_MERCY_SECONDS": str(STOP_MERCY_SECONDS),
        "STOP_KILL_AFTER_SECONDS": str(STOP_KILL_AFTER_SECONDS),
        "CPUS": str(host.cpus()),
    }


def uwsgi_options(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """UWSGI_<OPTION>=value variables that are not settings of the table, as
    uWSGI's own (option, value) pairs: UWSGI_MAX_REQUESTS -> max-requests."""
    options = []
    for name in sorted(env):
        if name.startswith("UWSGI_") and name not in BY_NAME and name not in UWSGI_INTERNAL \
                and not name.startswith("UWSGI_EMPEROR_"):
            options.append((name[len("UWSGI_"):].lower().replace("_", "-"), env[name]))
    return options
