"""The settings table's chapter on the start: the pre-start hook, the
paths the app writes beside its code, `*_FILE` variables, the entry-point's
info lines, and debug mode's own settings."""

from __future__ import annotations

from ..userapp import writable
from . import defaults
from .forms import absolute_path, file_var_names, flag, ip_address, one_of, writable_paths
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "PRE_START_PATH",
        default="/app/prestart.sh",
        form="an absolute path such as /app/prestart.sh",
        parse=absolute_path,
        doc="A script run with bash before the server starts, if it exists (migrations; tiangolo's name).",
        enforced=(
            "__main__.SHELL_VALUES (the entry-point's own)",
            "lib/hooks.sh: flaskbox_run_hooks",
            "lib/hooks.sh: _hook_sources (debug mode: a change to it restarts)",
        ),
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
        enforced=(
            "__main__.cmd_writable",
            "userapp.writable.link (at build)",
            "userapp.writable.prepare (at start)",
            "entry-point.sh: flaskbox_writable_paths",
            "entry-point.sh: flaskbox_exec_command",
        ),
    ),
    Setting(
        "FILE_VARS_IGNORE",
        default="",
        form="variable names ending in _FILE, separated by spaces or commas, e.g. LOG_FILE,PID_FILE",
        parse=file_var_names,
        doc=("`*_FILE` variables of your app's own that hold a path (`LOG_FILE`), left alone: any other "
             "`VAR_FILE` gives the app `VAR` with the file's contents "
             "([configuration.md](configuration.md#secrets-as-files))."),
        enforced=(
            "start.file_vars.IGNORE",
            "start.file_vars.ignored (by its name: `IGNORE`)",
        ),
    ),
    Setting(
        "ENTRYPOINT_QUIET_LOGS",
        default="0",
        form="1 (quiet) or 0",
        parse=flag,
        doc="`1` silences the entry-point's info lines; errors are always printed.",
        enforced=(
            "log.info",
            "lib/common.sh: flaskbox_log",
        ),
    ),
    Setting(
        "DEBUG_RELOADER",
        default="inotify",
        form="inotify (file events) or poll (a scan every 0.5 s, for Docker Desktop)",
        parse=one_of("inotify", "poll"),
        doc=("Debug mode: `inotify` restarts on file events; `poll` looks for changes every 0.5 s (Docker "
             "Desktop)."),
        enforced=(
            "debug.server.main",
            "debug.server.reloader_name",
        ),
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
        enforced=(
            "debug.server.main",
            "sidecars.health.main (health.check_debug)",
            "debug.debug_warning.lines (who can reach the debugger)",
        ),
    ),
    Setting(
        "INSTALL_ON_START",
        default="0",
        form="1 (install /app/requirements.txt and requirements_os.txt at start) or 0",
        parse=flag,
        doc=("Debug mode: `1` installs `/app/requirements.txt` and `/app/requirements_os.txt` at start "
             "([develop.md](develop.md#installing-packages-at-start-install_on_start1))."),
        enforced=(
            "settings.resolve._check_together (debug mode only)",
            "__main__.SHELL_VALUES (the entry-point's own)",
            "lib/install-on-start.sh: flaskbox_install_on_start",
            "lib/install-on-start.sh: flaskbox_install_os_packages",
            "lib/hooks.sh: _hint_missing_packages (a restart installs a missing package)",
            "userapp.load_failure.install_on_start (the same advice for the app's import)",
        ),
    ),
)
