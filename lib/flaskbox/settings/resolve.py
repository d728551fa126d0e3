"""resolve(): the environment turned into checked, typed settings, once per
start. It fills in defaults (some computed from the container: host.py,
defaults.py), refuses anything outside a setting's form with a message
naming the variable and the form (exit code 2 at the entry-point), checks
the rules that involve more than one setting, and adds the numbers the
configs need (derived())."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..host import Host
from ..layout import (
    BODY_BUFFER,
    BODY_SLOTS,
    DEBUG,
    GEVENT,
    GEVENT_SITE,
    HEADER_FIRST_BUFFER,
    HOST_NAME_FORM,
    PORT_FORM,
    PRODUCTION,
    PROXY_BUFFER_BYTES,
    PROXY_BUFFERS,
    RETRY_AFTER_SECONDS,
    SAMPLE_FINGERPRINT,
    SEND_TIMEOUT_SECONDS,
    STOP_MERCY_SECONDS,
    SYNC,
    TRACEPARENT_FORM,
    UWSGI_BUFFER_SIZE,
    header_buffers,
    response_header_buffer,
    stop_drain,
    uwsgi_max_vars,
)
from ..record import Record
from ..start import ports, tls
from ..userapp import discover
from . import names, pids
from .defaults import Context, capacity
from .forms import SettingError, line_size, size_bytes
from .table import BY_NAME, SETTINGS


@dataclass
class Resolved:
    mode: str
    values: dict[str, str]   # as given or defaulted, the text the configs use
    typed: dict[str, Any]    # the same, converted by each setting's form
    defaulted: set[str]      # the ones filled in by default
    derived: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # info lines for the log
    # The user's uWSGI options (record.Record.uwsgi).
    uwsgi: dict[str, list[list[str]]] = field(default_factory=lambda: {"ini": [], "env": []})

    def record(self) -> Record:
        return Record(self.mode, self.typed, self.values, self.derived, self.uwsgi)


def resolve(mode: str, env: Mapping[str, str] = os.environ, host: Host | None = None) -> Resolved:
    host = host or Host()
    resolved = _resolve(mode, env, host)
    if mode == PRODUCTION:
        resolved = _fit_pids(resolved, env, host)
        resolved.uwsgi = user_uwsgi_options(resolved, env)
    resolved.notes += names.warnings(env, mode)
    return resolved


# Options of a user's uWSGI ini (UWSGI_INI, or tiangolo's /app/uwsgi.ini)
# that name the app: they became APP_MODULE (discover.py) instead.
APP_OPTIONS = {"module", "callable", "wsgi", "wsgi-file"}
# Options flaskbox owns: the socket nginx talks to, the process tree, the
# user, where the app lives, logging. Left out, each with a log line.
OWNED_OPTIONS = {"socket", "uwsgi-socket", "http-socket", "http11-socket", "http", "https", "shared-socket",
                 "chdir", "uid", "gid", "chmod-socket", "chown-socket", "vacuum", "master", "die-on-term",
                 "pidfile", "pidfile2", "daemonize", "daemonize2", "logto", "logto2", "stats", "plugin",
                 "plugins", "virtualenv", "venv", "home", "need-app"}


def user_uwsgi_options(resolved: Resolved, env: Mapping[str, str]) -> dict[str, list[list[str]]]:
    """The user's uWSGI options, in the order uwsgi.ini takes them (later
    ones win): UWSGI_INI's [uwsgi] options, minus those that name the app
    or that flaskbox owns (a note for each of the latter), or that became
    settings (INI_SIZED, and cheaper: resolved, and said so); then the
    UWSGI_<OPTION> variables (but cheaper)."""
    kept = []
    path = resolved.values["UWSGI_INI"]
    for key, value in discover.read_uwsgi_ini(Path(path)) if path else []:
        if key in OWNED_OPTIONS:
            resolved.notes.append(f"{path}: `{key} = {value}` left out: flaskbox sets {key} itself")
        elif key not in APP_OPTIONS and key not in names.INI_SIZED and key != "cheaper":
            kept.append([key, value])
    passed = [[key, value] for key, value in uwsgi_options(env) if key != "cheaper"]
    return {"ini": kept, "env": passed}


def _resolve(mode: str, env: Mapping[str, str], host: Host) -> Resolved:
    notes: list[str] = []
    given = {name: value for name, value in names.given(env, host.app_dir, notes, mode).items()
             if not (value == "auto" and BY_NAME[name].accepts_auto)}
    values: dict[str, str] = {}
    typed: dict[str, Any] = {}
    defaulted: set[str] = set()
    context = Context(mode, host, env, values)
    for setting in SETTINGS:
        if setting.name in given:
            value = setting.normalize(given[setting.name])
            if value not in (given[setting.name], given[setting.name].rstrip("/")):
                notes.append(f"{setting.name}='{given[setting.name]}' read as '{value}'")
        else:
            try:
                value = setting.default_for(context)
            except discover.AppError as exc:
                raise SettingError(str(exc)) from exc
            defaulted.add(setting.name)
        try:
            typed[setting.name] = setting.parse(value)
        except ValueError:
            raise SettingError(f"{setting.name}='{given.get(setting.name, value)}' is not valid: "
                               f"expected {setting.form}") from None
        values[setting.name] = value
    values["APP_MODE"] = typed["APP_MODE"] = mode
    resolved = Resolved(mode, values, typed, defaulted, notes=[*notes, *context.notes])
    _check_together(resolved, env, host)
    resolved.derived = derived(resolved, host, env)
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
        raise SettingError(ports.too_low("PORT", port, start, host.host_network(), 8080))
    _check_metrics_port(values)
    _check_ports_free(values, mode, host)
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
    for name, value in env.items():
        if name.startswith("UWSGI_") and "\n" in value:
            raise SettingError(f"{name} holds a line break: uWSGI options are one line")
    if mode == PRODUCTION:
        _check_worker_class(resolved)
        try:
            tls.check(values, start, host.host_network())
        except tls.TLSError as exc:
            raise SettingError(str(exc)) from None
    body, space = size_bytes(values["MAX_BODY_SIZE"]), size_bytes(values["UPLOAD_SPACE"])
    if body and space < body:  # a default is never below it (defaults.upload_space)
        raise SettingError(
            f"UPLOAD_SPACE='{values['UPLOAD_SPACE']}' is smaller than "
            f"MAX_BODY_SIZE={values['MAX_BODY_SIZE']}: not even one upload of the largest allowed size "
            "would fit; raise UPLOAD_SPACE (and the space under RUNTIME_DIR) or lower MAX_BODY_SIZE")


def _fit_pids(resolved: Resolved, env: Mapping[str, str], host: Host) -> Resolved:
    """The pool within the cgroup's pids limit, with room for a reload's
    second pool where there is some: a defaulted UWSGI_THREADS is lowered
    (a note says so); a pool that cannot fit at all is refused (exit 2)."""
    limit = host.pids_limit()
    values = resolved.values
    counts = pids.need(values, int(values["UWSGI_THREADS"]))
    if limit is None or counts.reload <= limit:
        return resolved
    fitted = None
    if "UWSGI_THREADS" in resolved.defaulted and values["WORKER_CLASS"] == SYNC:
        fitted = pids.fitted_threads(values, limit)
    if fitted is not None:
        threads, reload_fits = fitted
        again = _resolve(resolved.mode, {**env, "UWSGI_THREADS": str(threads)}, host)
        again.defaulted.add("UWSGI_THREADS")
        again.notes.append(
            f"the pids limit is {limit} (--pids-limit): UWSGI_THREADS lowered from {values['UWSGI_THREADS']} "
            f"to {threads} so that the pool fits" + ("" if reload_fits else NO_RELOAD_ROOM))
        return again
    if counts.steady <= limit:
        resolved.notes.append(f"the pids limit is {limit} (--pids-limit){NO_RELOAD_ROOM}")
        return resolved
    advice = ("lower UWSGI_PROCESSES" if values["WORKER_CLASS"] == GEVENT
              else "lower UWSGI_THREADS or UWSGI_PROCESSES")
    raise SettingError(
        f"the pool does not fit this container's pids limit ({limit}, --pids-limit): UWSGI_PROCESSES="
        f"{values['UWSGI_PROCESSES']} with UWSGI_THREADS={values['UWSGI_THREADS']} needs about "
        f"{counts.steady} processes and threads with nginx and the rest; {advice}, or raise the limit")


NO_RELOAD_ROOM = ("; a reload's second pool would not fit beside it, so a SIGHUP keeps the running code "
                  "(raise the limit for reloads)")


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
        if "CLIENT_STREAM_SHARE" not in resolved.defaulted:
            raise SettingError(
                f"CLIENT_STREAM_SHARE='{values['CLIENT_STREAM_SHARE']}' applies with WORKER_CLASS=sync only: "
                "gevent's streams take no thread each, and WORKER_CONNECTIONS bounds them; unset "
                "CLIENT_STREAM_SHARE")
        return
    for name in GEVENT_ONLY:
        if name not in resolved.defaulted:
            raise SettingError(
                f"{name}='{values[name]}' applies with WORKER_CLASS=gevent only (WORKER_CLASS is "
                f"'{values['WORKER_CLASS']}'): set WORKER_CLASS=gevent, or unset {name}")


def _check_metrics_port(values: Mapping[str, str]) -> None:
    """Metrics on a port of their own: nginx already holds PORT."""
    if values["METRICS_PORT"] and values["METRICS_PORT"] == values["PORT"]:
        raise SettingError(f"METRICS_PORT={values['METRICS_PORT']} is PORT as well: expected "
                           f"{BY_NAME['METRICS_PORT'].form}, e.g. METRICS_PORT=9100")


def _check_ports_free(values: Mapping[str, str], mode: str, host: Host) -> None:
    """A port something already listens on (on the host network, another
    container) is refused, unless SHARE_PORT asks for sharing: nginx would
    share it (reuseport) and two versions of the code would each get part
    of the requests, or fail to bind it once the app has imported."""
    if mode == PRODUCTION and values["SHARE_PORT"] == "1":
        return
    names = ["PORT"]
    if mode == PRODUCTION:
        names += ["TLS_PORT"] * tls.enabled(values) + ["METRICS_PORT"] * bool(values["METRICS_PORT"])
    for name in names:
        taken = host.listeners(int(values[name]))
        if taken:
            share = " (debug mode never shares its port)"
            if mode == PRODUCTION:
                share = (", or set SHARE_PORT=1 to share it on purpose (start-first updates on the host "
                         "network: docs/swarm.md)")
            raise SettingError(
                f"{name}={values[name]}: something already listens on it here ({', '.join(taken)}); on the "
                f"host network (--network host) that may be another container. Stop it or choose another "
                f"{name}{share}")


def derived(resolved: Resolved, host: Host, env: Mapping[str, str] = os.environ) -> dict[str, str]:
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
    line = line_size(values["MAX_LINE_SIZE"])
    buffers = header_buffers(line, host.nginx_counts_headers())
    return {
        "UPSTREAM_MAX_CONNS": str(upstream),
        "UWSGI_LISTEN": str(backlog),
        "UPSTREAM_TIMEOUT": str(_upstream_timeout(values)),
        # A replaced sync worker (max-requests, WORKER_MAX_MEMORY) finishes
        # the requests its other threads hold, a long download or export
        # among them, with a reload's grace (a stuck one ends within
        # REQUEST_TIMEOUT: guards.Watchdog), before the master kills it; a
        # stop has its own, shorter budget (STOP_*).
        "WORKER_RELOAD_MERCY": str(max(int(values["REQUEST_TIMEOUT"]) + 2, int(values["RELOAD_GRACE"]))
                                   if values["WORKER_CLASS"] == SYNC else STOP_MERCY_SECONDS),
        "SEND_TIMEOUT": str(SEND_TIMEOUT_SECONDS),
        # uWSGI waits for nginx to take a response longer than nginx waits
        # for the client: a slow client is nginx's to judge, never cut here.
        "UWSGI_SOCKET_TIMEOUT": str(SEND_TIMEOUT_SECONDS + 5),
        "PROXY_BUFFER": f"{PROXY_BUFFER_BYTES // 1024}k",
        "PROXY_HEADER_BUFFER": str(response_header_buffer(line)),
        "PROXY_BUFFERS": str(PROXY_BUFFERS),
        "GEVENT_SITE": str(GEVENT_SITE),
        "NGINX_OPEN_FILES": str(2 * connections + 64),
        "BODY_SLOTS": str(BODY_SLOTS),
        # Whether the user set MAX_BODY_SIZE: else the app's own
        # MAX_CONTENT_LENGTH may raise nginx's limit (start/body.py).
        "MAX_BODY_SIZE_SET": "0" if "MAX_BODY_SIZE" in resolved.defaulted else "1",
        # Whether the user set UPLOAD_SPACE: the start's line says whose the
        # limit on uploads at once is (start/body.py).
        "UPLOAD_SPACE_SET": "0" if "UPLOAD_SPACE" in resolved.defaulted else "1",
        "HEADER_LINE": str(line),
        "HEADER_BUFFERS": str(buffers),
        "HEADER_FIRST_BUFFER": f"{HEADER_FIRST_BUFFER // 1024}k",
        "UWSGI_BUFFER_SIZE": str(UWSGI_BUFFER_SIZE),
        "UWSGI_MAX_VARS": str(uwsgi_max_vars(line, buffers)),
        "BODY_BUFFER": BODY_BUFFER,
        "RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS),
        "HOST_NAME_FORM": HOST_NAME_FORM,
        "PORT_FORM": PORT_FORM,
        "TRACEPARENT_FORM": TRACEPARENT_FORM,
        # How long nginx drains in a stop of STOP_TIMEOUT (nginx.conf's
        # worker_shutdown_timeout), and uWSGI's workers then (app.ini).
        "STOP_DRAIN_SECONDS": str(stop_drain(int(values["STOP_TIMEOUT"]))),
        "STOP_MERCY_SECONDS": str(STOP_MERCY_SECONDS),
        # uWSGI's own bound on a stopping pool (app.ini's reload-mercy): never
        # sooner than the arbiter's, which gives the workers' exit what
        # STOP_TIMEOUT or RELOAD_GRACE leaves (arbiter/stop.py, generation.py).
        "UWSGI_RELOAD_MERCY": str(max(int(values["STOP_TIMEOUT"]), int(values["RELOAD_GRACE"])) + 1),
        "CPUS": str(host.cpus()),
        # uWSGI's cheaper mode, honoured and said (the pool's line in the log).
        "UWSGI_CHEAPER": _cheaper(resolved, env, host),
        # The debug server's warning says who can reach it (debug_warning.py).
        "HOST_NETWORK": "1" if host.host_network() else "0",
        # nginx's listen parameter: sockets shared with another container.
        "REUSEPORT": " reuseport" if values["SHARE_PORT"] == "1" else "",
        # The OOM killer's count at start: a server that dies later is named
        # as its victim when the count has risen (arbiter/stop.py).
        "OOM_KILLS": str(host.oom_kills() or 0),
        # Whether a reload's second pool fits the pids limit beside the
        # first (the arbiter keeps the running code when it does not), and
        # what one more pool takes of it (a reload while an earlier one's
        # pool still finishes its requests: arbiter/reload.py).
        "RELOAD_ROOM": "1" if _reload_fits(values, host) else "0",
        "POOL_PIDS": str(_pool_pids(values)),
    }


def _cheaper(resolved: Resolved, env: Mapping[str, str], host: Host) -> str:
    """uWSGI's cheaper mode as it will run (render.uwsgi_ini writes it)."""
    if resolved.mode != PRODUCTION:
        return ""
    given = names.cheaper(env, host.app_dir)
    cheaper, note = names.cheaper_mode(given, int(resolved.values["UWSGI_PROCESSES"]))
    if note:
        resolved.notes.append(note)
    return cheaper


def _pool_pids(values: Mapping[str, str]) -> int:
    counts = pids.need(values, int(values["UWSGI_THREADS"]))
    return counts.reload - counts.steady


def _reload_fits(values: Mapping[str, str], host: Host) -> bool:
    limit = host.pids_limit()
    return limit is None or pids.need(values, int(values["UWSGI_THREADS"])).reload <= limit


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
    """UWSGI_<OPTION>=value variables passed on to uWSGI as its own options
    (names.passed_to_uwsgi): UWSGI_MAX_REQUESTS -> max-requests."""
    return names.passed_to_uwsgi(env, names.uwsgi_known_options)
