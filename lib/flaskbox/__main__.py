"""flaskbox's commands, run by entry-point.sh (and healthcheck.sh, lib/bin/flask,
the arbiter's helpers):

    python3 -m flaskbox file-vars      VAR from the file VAR_FILE names, for every VAR_FILE (shell records)
    python3 -m flaskbox env-files      /app/.env and .flaskenv as `flask run` reads them (shell records)
    python3 -m flaskbox check MODE     check the settings (before the hooks); the shell's values (records)
    python3 -m flaskbox prepare MODE   resolve them once into RUNTIME_DIR/settings.json; in production,
                                       render the configs and put the certificate in use
    python3 -m flaskbox default NAME   one setting's default (production)
    python3 -m flaskbox settings       the settings, for the usage text
    python3 -m flaskbox health         the image's health check (exit 1: unhealthy)
    python3 -m flaskbox app-module     the APP_MODULE the servers would use, for FLASK_APP
    python3 -m flaskbox flask-env      what the flask command needs to act on the served app (lib/bin/flask)
    python3 -m flaskbox sources PATH...         debug mode: the state of the files a hook may depend on
    python3 -m flaskbox await-change STATE PATH...  debug mode: return once that state has changed
    python3 -m flaskbox writable       (as root, in a Dockerfile) link WRITABLE_PATHS to the volume
    python3 -m flaskbox writable MODE  (at start) each WRITABLE_PATHS target ready on the volume
    python3 -m flaskbox docs-table [zh-CN]  the settings rows of docs/configuration.md (or zh-CN's)
    python3 -m flaskbox metrics        serve /metrics on METRICS_PORT (one of the arbiter's helpers)
    python3 -m flaskbox json-log       stdin's lines as JSON objects on stdout (LOG_FORMAT=json)
    python3 -m flaskbox tls-watch      put each renewal of TLS_CERT and TLS_KEY in use (a helper)
    python3 -m flaskbox tls-apply      put TLS_CERT and TLS_KEY in use if they changed (the arbiter's HUP);
                                       exit 1: they fail the check, and the pair in use stays

Production's PID 1 is `python3 -m flaskbox.arbiter` (flaskbox/arbiter/).
A setting outside its form exits 2 with a message naming it and the form.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from . import record, settings
from .layout import BAD_INPUT, FAILED, SIGNALLED, STOPPED
from .log import error, info, log, warn
from .request import admission
from .start import env_files, file_vars, render
from .start.shell import EXPORT, SET, records
from .userapp import discover, packages, writable


def resolve(mode: str) -> settings.Resolved:
    if mode not in settings.MODES:
        error(f"'{mode}' is not a mode: expected production or debug")
        sys.exit(BAD_INPUT)
    try:
        return settings.resolve(mode)
    except settings.SettingError as exc:
        # A value read from a file (a secret) is named, never quoted.
        error(file_vars.redact(str(exc)))
        sys.exit(BAD_INPUT)


# What the entry-point's own steps before the record use: where the
# runtime files go (INSTALL_ON_START's packages), the app and the pre-start
# script (the hooks), INSTALL_ON_START's switch.
SHELL_VALUES = ("RUNTIME_DIR", "APP_MODULE", "PRE_START_PATH", "INSTALL_ON_START")


def shell_records(resolved: settings.Resolved) -> bytes:
    """Those values, as the shell's own variables (records: shell.py; not
    exports: nothing travels to the servers this way). A variable the
    environment gives (APP_MODULE=app.py with -e, exported) keeps its given
    value: assigned, it would change the environment, and `prepare` would no
    longer see what was given (its note "read as 'app'")."""
    return records((SET, name, resolved.values[name]) for name in SHELL_VALUES
                   if os.environ.get(name, resolved.values[name]) == resolved.values[name])


def checked(mode: str) -> tuple[settings.Resolved, list[str]]:
    """The settings and the installed packages checked (exit 2), with the
    notes for the log."""
    resolved = resolve(mode)
    try:
        notes = [*packages.notes(mode, resolved.values["WORKER_CLASS"]), *writable.instance_notes()]
    except packages.ConflictError as exc:
        error(str(exc))
        sys.exit(BAD_INPUT)
    return resolved, [*file_vars.notes(), *env_files.notes(), *resolved.notes, *notes]


def cmd_file_vars() -> None:
    """First of all, before any setting is read: each VAR_FILE's file
    becomes VAR (flaskbox/start/file_vars.py), as the shell's records."""
    try:
        lines = file_vars.assignments(os.environ)
    except file_vars.FileVarError as exc:
        error(str(exc))
        sys.exit(BAD_INPUT)
    sys.stdout.buffer.write(lines)


def cmd_env_files() -> None:
    """/app/.env and /app/.flaskenv as `flask run` reads them (env_files.py),
    as the shell's records."""
    sys.stdout.buffer.write(env_files.assignments(os.environ))


def cmd_check(mode: str) -> None:
    """The pass before the hooks, whose settings may still change: a bad
    value stops the start before any hook runs; notes wait for `prepare`."""
    sys.stdout.buffer.write(shell_records(checked(mode)[0]))


def cmd_prepare(mode: str) -> None:
    """The settings, resolved once (after the hooks) into the record that
    the configs, the servers and the health check read; then what the mode
    needs before its server starts."""
    resolved, notes = checked(mode)
    place = record.runtime({"RUNTIME_DIR": resolved.values["RUNTIME_DIR"]})
    current = resolved.record()
    try:
        place.dir.mkdir(parents=True, exist_ok=True)
        record.write(current, place)
    except OSError:
        # The environment, not flaskbox, is what needs changing: bad input (2).
        error(f"RUNTIME_DIR '{place.dir}' is not writable; on a read-only root add --tmpfs /tmp")
        sys.exit(BAD_INPUT)
    for note in notes:
        say(note)
    if mode == settings.PRODUCTION:
        render_configs(current)
        if current["TLS_CERT"]:
            from .sidecars import certificates

            # Refused: the start ends, as a bad setting does.
            if not certificates.apply(current["TLS_CERT"], current["TLS_KEY"], place):
                sys.exit(BAD_INPUT)
    else:
        from .debug import debug_warning

        for line in debug_warning.lines(current, current.derived["HOST_NETWORK"] == "1"):
            log(line)
        # A fresh start: an APP_MODULE that names no app exits 2, as in
        # production (flaskbox/debug/server.py); after an edit it is shown instead.
        place.debug_loaded.unlink(missing_ok=True)
        place.debug_app.unlink(missing_ok=True)


def say(note: str) -> None:
    """A note for the log: a warning is never silenced, information is by
    ENTRYPOINT_QUIET_LOGS=1."""
    if note.startswith("warning: "):
        warn(note.removeprefix("warning: "))
    else:
        info(note)


def render_configs(current: record.Record) -> None:
    """nginx.conf, uwsgi.ini and their includes, written from the record
    (render.py), and the pool's line in the log."""
    try:
        render.render_production(current)
    except (OSError, render.TemplateError) as exc:
        error(f"cannot write the configuration into RUNTIME_DIR: {exc}")
        sys.exit(FAILED)
    values, derived = current.values, current.derived
    cheaper = derived.get("UWSGI_CHEAPER")
    # gevent's process runs one thread: its requests at once are its greenlets.
    each = (f"{values['WORKER_CONNECTIONS']} gevent requests" if values["WORKER_CLASS"] == "gevent"
            else f"{values['UWSGI_THREADS']} threads")
    if admission.gated(current):
        each = (f"up to {each} (ADAPTIVE_THREADS: as many at once as run in their time alone, and "
                "headroom)")
    pool = (f"uWSGI up to {values['UWSGI_PROCESSES']} processes x {each} (cheaper "
            f"mode: {cheaper} kept running, more started under load)" if cheaper else
            f"uWSGI {values['UWSGI_PROCESSES']} processes x {each}")
    info(f"{derived['CPUS']} CPU(s) available: {pool}, nginx {values['NGINX_WORKER_PROCESSES']} workers")
    # The body limit and the uploads it leaves room for are said once the
    # app has said its own limit (arbiter/nginx.py, start/body.py).
    info(f"queue: {values['QUEUE_SIZE']} waiting requests; {values['CONNECTIONS_PER_CLIENT']} per client")


def cmd_default(name: str) -> None:
    setting = settings.BY_NAME.get(name)
    if setting is None:
        error(f"no setting named {name}")
        sys.exit(BAD_INPUT)
    print(setting.default_for(settings.Context(settings.PRODUCTION, settings.Host(), os.environ, {})))


def cmd_settings() -> None:
    width = max(len(setting.name) for setting in settings.SETTINGS)
    for setting in settings.SETTINGS:
        print(f"  {setting.name:<{width}}  {setting.default_doc.replace('`', '')}")


def app_before_start() -> str:
    """The app a start would serve, found without checking any setting ("" if
    there is none)."""
    value = discover.from_file_name(os.environ.get("APP_MODULE") or os.environ.get("FLASK_APP") or "")
    if not value:
        try:
            ini = os.environ.get("UWSGI_INI")
            value = discover.find_module(ini=Path(ini) if ini else None)[0]
        except discover.AppError:
            return ""
    return value


def cmd_app_module() -> None:
    """For `docker run IMAGE flask ...`: no settings are checked there, so
    only the app is found (nothing printed, exit 1, if there is none)."""
    value = app_before_start()
    if not value:
        sys.exit(1)
    print(value)


def cmd_flask_env() -> None:
    """For lib/bin/flask (`docker exec CONTAINER flask ...`, which starts no
    entry-point): exports (the shell's records) naming the app this container serves, from the
    record of its start, or in a container that serves nothing yet (`docker
    run IMAGE flask ...`) the app a start would find; in debug mode the dev
    server's FLASK_DEBUG and no bytecode in a mounted /app. What the
    environment already sets wins."""
    try:
        current = record.load()
        mode, app = current.mode, current["APP_MODULE"]
    except (OSError, ValueError, KeyError):
        mode, app = os.environ.get("APP_MODE", settings.PRODUCTION), app_before_start()
    exports = {"FLASK_APP": app}
    if mode == settings.DEBUG:
        exports.update(FLASK_DEBUG="1", PYTHONDONTWRITEBYTECODE="1")
    items = [(EXPORT, name, value) for name, value in exports.items() if value and not os.environ.get(name)]
    # INSTALL_ON_START's packages, in the virtualenv layered over the image's
    # (lib/install-on-start.sh), as the server has them.
    venv = record.runtime().dir / "venv"
    sites = sorted(venv.glob("lib/python3*/site-packages")) if (venv / "bin" / "python").exists() else []
    if sites:
        path = os.environ.get("PYTHONPATH", "")
        items += [(EXPORT, "VIRTUAL_ENV", str(venv)),
                  (EXPORT, "PATH", str(venv / "bin") + ":" + os.environ.get("PATH", "")),
                  (EXPORT, "PYTHONPATH", str(sites[0]) + (":" + path if path else ""))]
    sys.stdout.buffer.write(records(items))


def cmd_sources(*paths: str) -> None:
    from .debug import changes

    print(changes.state(list(paths)))


def cmd_await_change(before: str, *paths: str) -> None:
    from .debug import changes

    try:
        changes.await_change(before, list(paths))
    except KeyboardInterrupt:  # Ctrl-C in `docker run -it`: the entry-point ends the start
        sys.exit(SIGNALLED + signal.SIGINT)


def cmd_writable(mode: str = "") -> None:
    """No mode: the links, in the image (as root, at build time). A mode:
    at start, their targets on the volume."""
    setting = settings.BY_NAME["WRITABLE_PATHS"]
    value = setting.normalize(os.environ.get("WRITABLE_PATHS", ""))
    try:
        setting.parse(value)
    except ValueError:
        error(f"WRITABLE_PATHS='{os.environ['WRITABLE_PATHS']}' is not valid: expected {setting.form}")
        sys.exit(BAD_INPUT)
    try:
        if not mode:
            if not value:
                error("WRITABLE_PATHS is empty: set it first, e.g. ENV WRITABLE_PATHS=\"/app/.data/ "
                      "/app/myapp/secret_key\"")
                sys.exit(BAD_INPUT)
            for line in writable.link(value):
                print(f"flaskbox: writable: {line}")  # the image build's own log
            return
        for note in writable.prepare(value, mode):
            say(note)
    except writable.WritableError as exc:
        error(str(exc))
        sys.exit(exc.code)
    except PermissionError as exc:
        error(f"cannot make the links ({exc}): run `python3 -m flaskbox writable` as root (USER root "
              "in your Dockerfile, then back to USER 10001:0)")
        sys.exit(FAILED)


def cmd_docs_table(language: str = "en") -> None:
    """The settings rows of docs/configuration.md, or with zh-CN of
    docs/zh-CN/configuration.md, from the table itself (tests/test_docs.py
    fails when a page and this differ)."""
    from .settings import zh_cn

    for setting in settings.SETTINGS:
        english = (setting.default_doc, setting.doc)
        default, doc = zh_cn.TEXTS[setting.name] if language == "zh-CN" else english
        print(f"| `{setting.name}` | {default} | {doc} |")


def cmd_metrics() -> None:
    from .sidecars import metrics

    metrics.main()


def cmd_json_log() -> None:
    from .sidecars import jsonlog

    jsonlog.main()


def cmd_tls_watch() -> None:
    from .sidecars import certificates

    certificates.main()


def cmd_tls_apply() -> None:
    from .sidecars import certificates

    sys.exit(0 if certificates.main_apply() else 1)


def cmd_health() -> None:
    from .sidecars import health

    health.main()


COMMANDS = {"file-vars": cmd_file_vars, "env-files": cmd_env_files, "check": cmd_check,
            "prepare": cmd_prepare, "default": cmd_default, "settings": cmd_settings, "health": cmd_health,
            "app-module": cmd_app_module, "flask-env": cmd_flask_env, "sources": cmd_sources,
            "await-change": cmd_await_change, "writable": cmd_writable, "docs-table": cmd_docs_table,
            "metrics": cmd_metrics, "json-log": cmd_json_log, "tls-watch": cmd_tls_watch,
            "tls-apply": cmd_tls_apply}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        sys.exit(STOPPED if argv and argv[0] in ("-h", "--help") else BAD_INPUT)
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
