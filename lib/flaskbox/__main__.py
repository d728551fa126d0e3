"""flaskbox's commands, run by entry-point.sh (and healthcheck.sh):

    python3 -m flaskbox env MODE [--quiet]  the settings as `export` lines, for eval
    python3 -m flaskbox render MODE    write the configs into RUNTIME_DIR
    python3 -m flaskbox default NAME   one setting's default (production)
    python3 -m flaskbox settings       the settings, for the usage text
    python3 -m flaskbox health         the image's health check (exit 1: unhealthy)
    python3 -m flaskbox app-module     the APP_MODULE the servers would use, for FLASK_APP
    python3 -m flaskbox writable       (as root, in a Dockerfile) link WRITABLE_PATHS to the volume
    python3 -m flaskbox writable MODE  (at start) each WRITABLE_PATHS target ready on the volume
    python3 -m flaskbox docs-table     the settings rows of docs/configuration.md

A setting outside its form exits 2 with a message naming it and the form.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import discover, packages, render, settings, writable
from .log import error, info


def resolve(mode: str) -> settings.Resolved:
    if mode not in settings.MODES:
        error(f"'{mode}' is not a mode: expected production or debug")
        sys.exit(2)
    try:
        return settings.resolve(mode)
    except settings.SettingError as exc:
        error(str(exc))
        sys.exit(2)


def cmd_env(mode: str, *flags: str) -> None:
    """--quiet: the pass before the hooks, whose settings may still change;
    its notes would be said again by the pass after them."""
    resolved = resolve(mode)
    try:
        notes = [*packages.notes(mode, resolved.values["WORKER_CLASS"]), *writable.instance_notes()]
    except packages.ConflictError as exc:
        error(str(exc))
        sys.exit(2)
    if "--quiet" not in flags:
        for note in [*resolved.notes, *notes]:
            info(note)
    for name, value in resolved.exports().items():
        print(f"export {name}={shlex.quote(value)}")


def cmd_render(mode: str) -> None:
    resolved = resolve(mode)
    seen = len(resolved.notes)  # already logged by `env`
    try:
        render.render_production(resolved, dict(os.environ))
    except (OSError, render.TemplateError) as exc:
        error(f"cannot write the configuration into RUNTIME_DIR: {exc}")
        sys.exit(1)
    for note in resolved.notes[seen:]:
        info(note)
    values, derived = resolved.values, resolved.derived
    info(f"{derived['CPUS']} CPU(s) available: uWSGI {values['UWSGI_PROCESSES']} processes x "
         f"{values['UWSGI_THREADS']} threads, nginx {values['NGINX_WORKER_PROCESSES']} workers")
    slots = derived["UPLOAD_SLOTS"]
    uploads = f"{slots} uploads at once ({values['UPLOAD_SPACE']})" if slots != "0" else "uploads unbounded"
    info(f"queue: {values['QUEUE_SIZE']} waiting requests; {values['CONNECTIONS_PER_CLIENT']} per client; "
         f"{uploads}")


def cmd_default(name: str) -> None:
    setting = settings.BY_NAME.get(name)
    if setting is None:
        error(f"no setting named {name}")
        sys.exit(2)
    print(setting.default_for(settings.Context(settings.PRODUCTION, settings.Host(), os.environ, {})))


def cmd_settings() -> None:
    width = max(len(setting.name) for setting in settings.SETTINGS)
    for setting in settings.SETTINGS:
        print(f"  {setting.name:<{width}}  {setting.default_doc.replace('`', '')}")


def cmd_app_module() -> None:
    """For `docker run IMAGE flask ...`: no settings are checked there, so
    only the app is found (nothing printed, exit 1, if there is none)."""
    value = os.environ.get("APP_MODULE") or os.environ.get("FLASK_APP")
    if not value:
        try:
            ini = os.environ.get("UWSGI_INI")
            value = discover.find_module(ini=Path(ini) if ini else None)[0]
        except discover.AppError:
            sys.exit(1)
    print(value)


def cmd_writable(mode: str = "") -> None:
    """No mode: the links, in the image (as root, at build time). A mode:
    at start, their targets on the volume."""
    setting = settings.BY_NAME["WRITABLE_PATHS"]
    value = setting.normalize(os.environ.get("WRITABLE_PATHS", ""))
    if not setting.check(value):
        error(f"WRITABLE_PATHS='{os.environ['WRITABLE_PATHS']}' is not valid: expected {setting.form}")
        sys.exit(2)
    try:
        if not mode:
            if not value:
                error("WRITABLE_PATHS is empty: set it first, e.g. ENV WRITABLE_PATHS=\"/app/.data/ "
                      "/app/myapp/secret_key\"")
                sys.exit(2)
            for line in writable.link(value):
                print(f"flaskbox: writable: {line}")  # the image build's own log
            return
        for note in writable.prepare(value, mode):
            info(note)
    except writable.WritableError as exc:
        error(str(exc))
        sys.exit(exc.code)
    except PermissionError as exc:
        error(f"cannot make the links ({exc}): run `python3 -m flaskbox writable` as root (USER root "
              "in your Dockerfile, then back to USER 10001:10001)")
        sys.exit(1)


def cmd_docs_table() -> None:
    """The settings rows of docs/configuration.md, from the table itself
    (tests/test_docs.py fails when the page and this differ)."""
    for setting in settings.SETTINGS:
        print(f"| `{setting.name}` | {setting.default_doc} | {setting.doc} |")


def cmd_health() -> None:
    from . import health

    health.main()


COMMANDS = {"env": cmd_env, "render": cmd_render, "default": cmd_default, "settings": cmd_settings,
            "health": cmd_health, "app-module": cmd_app_module, "writable": cmd_writable,
            "docs-table": cmd_docs_table}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
