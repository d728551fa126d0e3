"""The names settings go by, and the names in the environment that look meant
for flaskbox but are none of them.

given()     the settings present in the environment, by any of their names:
            their own, tiangolo's image's and Flask's (ALIASES), and uWSGI's
            own options for what flaskbox sizes itself (UWSGI_WORKERS, or
            `processes = 8` in a tiangolo-style /app/uwsgi.ini), which are
            honoured and stated in a note. In production, uWSGI options that
            would make the pool another kind than WORKER_CLASS says (gevent,
            async) are refused, naming the setting to use. uWSGI's cheaper
            mode (tiangolo's image ran it) is honoured, and the log's line
            about the pool says so (cheaper()).
warnings()  a misspelled setting (REQUST_TIMEOUT), another server's name
            for one (WEB_CONCURRENCY, MODULE_NAME), a UWSGI_ name that is no
            uWSGI option, an NGINX_ name that is no setting: each named with
            the right one. Only a warning: the app may read a variable of
            that name itself.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from ..layout import PRODUCTION, VENV
from .forms import SettingError
from .table import BY_NAME

# Other names for settings: tiangolo/uwsgi-nginx-flask's, Flask's own, and
# uWSGI's (as UWSGI_<OPTION> variables).
ALIASES = {"LISTEN_PORT": "PORT", "NGINX_MAX_UPLOAD": "MAX_BODY_SIZE", "FLASK_APP": "APP_MODULE",
           "UWSGI_WORKERS": "UWSGI_PROCESSES", "UWSGI_HARAKIRI": "REQUEST_TIMEOUT"}
ALIAS_REASONS = {"LISTEN_PORT": "tiangolo's image", "NGINX_MAX_UPLOAD": "tiangolo's image",
                 "FLASK_APP": "the flask command's", "UWSGI_WORKERS": "uWSGI's",
                 "UWSGI_HARAKIRI": "uWSGI's (flaskbox bounds each request itself)"}
# A uWSGI ini's options (UWSGI_INI, tiangolo's /app/uwsgi.ini) for what
# flaskbox sizes itself: taken as these settings.
INI_SIZED = {"processes": "UWSGI_PROCESSES", "workers": "UWSGI_PROCESSES", "threads": "UWSGI_THREADS",
             "harakiri": "REQUEST_TIMEOUT"}
# tiangolo's variables with no flaskbox equivalent: refused, saying what to use.
REFUSED = {
    "NGINX_WORKER_OPEN_FILES": "nginx gets two open files per connection; "
                               "set NGINX_WORKER_CONNECTIONS instead",
}
# uWSGI options that would size the pool behind the settings' back (nginx's
# queue, the stop's budget, the metrics count on the pool they describe).
UWSGI_REFUSED = {
    "gevent": "set WORKER_CLASS=gevent, and WORKER_CONNECTIONS for the requests each process holds",
    "async": "set WORKER_CLASS=gevent, and WORKER_CONNECTIONS for the requests each process holds",
}
# uWSGI flags app.ini turns on that keep forked workers sound: turned off
# (false, off, no or 0, as uWSGI reads a flag), refused, saying why.
UWSGI_KEPT_ON = {
    "py-call-uwsgi-fork-hooks": "it runs Python's at-fork hooks around every fork of a worker (the app's "
                                "os.register_at_fork hooks, logging's locks); without it an old ini's "
                                "py-call-osafterfork kills every worker at fork on Python 3.13 and later "
                                "(uWSGI #2710)",
}
UWSGI_FALSE = ("false", "off", "no", "0")
# uWSGI options read only while it starts Python, which python3 has done
# before uWSGI runs (the Dockerfile: pyuwsgi): refused rather than dropped.
UWSGI_BEFORE_PYTHON = {
    **dict.fromkeys(("home", "virtualenv", "venv", "pyhome"),
                    f"uWSGI runs in the image's python3 and {VENV}, started before any option is read: "
                    f"install the app's packages into {VENV} (pip in a Dockerfile FROM this image), or add "
                    "a folder to PYTHONPATH"),
    **dict.fromkeys(("py-programname", "py-program-name"), "set sys.executable with py-executable instead"),
    "optimize": "set PYTHONOPTIMIZE instead, which python3 reads at its start",
}
# UWSGI_* variables that are not options to pass on: the ones uWSGI sets
# for its own children (the table's own are left out too).
UWSGI_INTERNAL = {"UWSGI_RELOADS", "UWSGI_VASSALS_DIR", "UWSGI_BROODLORD_NUM", "UWSGI_JAIL_PID",
                  "UWSGI_ORIGINAL_PROC_NAME"}
# Other servers' and images' names for settings, which flaskbox does not
# read: said, with the one it reads.
ELSEWHERE = {
    "WEB_CONCURRENCY": ("gunicorn's and Heroku's name for the pool's size", "UWSGI_PROCESSES"),
    "WORKERS": ("a name some images read for the pool's size", "UWSGI_PROCESSES"),
    "GUNICORN_CMD_ARGS": ("gunicorn's", "the settings in the README"),
    "MAX_WORKERS": ("tiangolo's gunicorn image's", "UWSGI_PROCESSES"),
    "WORKERS_PER_CORE": ("tiangolo's gunicorn image's", "UWSGI_PROCESSES"),
    "MODULE_NAME": ("tiangolo's gunicorn image's", "APP_MODULE"),
    "VARIABLE_NAME": ("tiangolo's gunicorn image's", "APP_MODULE, as module:name"),
    "FLASK_RUN_PORT": ("the flask command's", "PORT"),
    "FLASK_RUN_HOST": ("the flask command's", "DEBUG_HOST in debug mode"),
}


# What FLASK_DEBUG and FLASK_ENV may hold without asking for the debugger.
NOT_DEBUG = ("", "0", "false", "False", "production")


def ini_path(env: Mapping[str, str], app_dir: Path) -> Path | None:
    """The uWSGI ini UWSGI_INI names, or its default (/app/uwsgi.ini)."""
    given = env.get("UWSGI_INI")
    if given:
        return Path(given)
    default = app_dir / "uwsgi.ini"
    return default if default.is_file() else None


def _uwsgi_option(name: str) -> str:
    """UWSGI_MAX_REQUESTS -> max-requests."""
    return name[len("UWSGI_"):].lower().replace("_", "-")


def _refused_uwsgi(option: str) -> str | None:
    for refused, advice in UWSGI_REFUSED.items():
        if option == refused or option.startswith(refused + "-"):
            return f"would size uWSGI's pool behind flaskbox's back: {advice}"
    return None


def _turned_off(option: str, value: str) -> str | None:
    if option in UWSGI_KEPT_ON and value.strip().lower() in UWSGI_FALSE:
        return f"turns off {option}, which flaskbox keeps on: {UWSGI_KEPT_ON[option]}"
    return None


def _before_python(option: str, value: str) -> str | None:
    if option in UWSGI_BEFORE_PYTHON and value.strip().rstrip("/") != str(VENV):
        return f"would take no effect: {UWSGI_BEFORE_PYTHON[option]}"
    return None


def _uwsgi_advice(option: str, value: str) -> str | None:
    """Why a uWSGI option of the user's is refused, if it is."""
    return _refused_uwsgi(option) or _turned_off(option, value) or _before_python(option, value)


def given(env: Mapping[str, str], app_dir: Path, notes: list[str], mode: str = PRODUCTION) -> dict[str, str]:
    """Settings present in env, by any name they go by (ALIASES, and a uWSGI
    ini's own for what flaskbox sizes: INI_SIZED); SettingError for two
    names of one setting that disagree, and for a refused name (uWSGI's
    only in production, where uWSGI runs)."""
    found = {name: env[name] for name in BY_NAME if name in env}
    named = {name: name for name in found}

    def take(alias: str, name: str, value: str, why: str) -> None:
        if name in found and found[name] != value:
            raise SettingError(f"{alias}='{value}' and {named[name]}='{found[name]}' disagree: {alias} is "
                               f"another name for {name} ({why}); set one of them")
        found.setdefault(name, value)
        named.setdefault(name, alias)

    for alias, name in ALIASES.items():
        if alias in env:
            take(alias, name, env[alias], ALIAS_REASONS[alias])
    for name, advice in REFUSED.items():
        if env.get(name):
            raise SettingError(f"{name}='{env[name]}' is not a flaskbox setting: {advice}")
    for name in sorted(env) if mode == PRODUCTION else ():
        option = _uwsgi_option(name) if name.startswith("UWSGI_") else None
        advice = option and _uwsgi_advice(option, env[name])
        if advice:
            raise SettingError(f"{name}='{env[name]}' {advice}")
    ini = ini_path(env, app_dir)
    if ini is not None and ini.is_file():
        _from_ini(ini, take, notes, mode, env)
    return found


def cheaper(env: Mapping[str, str], app_dir: Path) -> str:
    """uWSGI's cheaper mode as the user asked for it (UWSGI_CHEAPER, else
    `cheaper` in the uWSGI ini): the processes kept running when idle,
    more started under load up to UWSGI_PROCESSES; "" without it."""
    if env.get("UWSGI_CHEAPER"):
        return env["UWSGI_CHEAPER"]
    ini = ini_path(env, app_dir)
    if ini is None or not ini.is_file():
        return ""
    from ..userapp.discover import read_uwsgi_ini

    return next((value for key, value in reversed(read_uwsgi_ini(ini)) if key == "cheaper"), "")


def cheaper_mode(given: str, processes: int) -> tuple[str, str | None]:
    """(the cheaper value uWSGI is given, "" for none; a note, if any) for
    what the user asked. uWSGI refuses to start (exit 1) with cheaper at or
    above its processes, and takes 0 as off: either is said and run as a
    fixed pool, so the app runs and the log says what runs."""
    if not given:
        return "", None
    if not given.isdigit():
        raise SettingError(f"UWSGI_CHEAPER (or `cheaper` in the uWSGI ini) is '{given}': expected a whole "
                           "number of processes kept running, below UWSGI_PROCESSES")
    if int(given) == 0 or int(given) >= processes:
        return "", (f"cheaper mode asked for {given} process(es) of UWSGI_PROCESSES={processes}: off, every "
                    "process kept running (it needs a number from 1 to UWSGI_PROCESSES less one)")
    return given, None


def _from_ini(ini: Path, take: Callable[[str, str, str, str], None], notes: list[str], mode: str,
              env: Mapping[str, str]) -> None:
    from ..userapp.discover import read_uwsgi_ini

    for key, value in read_uwsgi_ini(ini):
        advice = _uwsgi_advice(key, value) if mode == PRODUCTION else None
        if advice:
            raise SettingError(f"{ini}: `{key} = {value}` {advice}; remove the line")
        if key in INI_SIZED:
            setting, number = INI_SIZED[key], _ini_number(value, env)
            if number is None:
                raise SettingError(f"{ini}: `{key} = {value}` is taken as {setting}, a whole number: write "
                                   f"one (or %k, or $(VARIABLE)), or set {setting} and remove the line")
            take(f"`{key}` in {ini}", setting, number, "uWSGI's")
            notes.append(f"{ini}: `{key} = {value}` taken as {setting}={number}")


def _ini_number(value: str, env: Mapping[str, str]) -> str | None:
    """An ini's value as uWSGI would read it, for the options taken as
    settings: a number, %k (the CPU cores uWSGI detects) or $(VARIABLE)."""
    import os

    if value == "%k":
        value = str(os.cpu_count() or 1)
    elif value.startswith("$(") and value.endswith(")"):
        value = env.get(value[2:-1], "")
    return value if value.isdigit() else None


def passed_to_uwsgi(env: Mapping[str, str], known: Callable[[], set[str] | None]) -> list[tuple[str, str]]:
    """UWSGI_<OPTION>=value variables that are not settings of the table nor
    another name of one, as uWSGI's own (option, value) pairs:
    UWSGI_MAX_REQUESTS -> max-requests. One uWSGI does not know is left
    out (warnings() names it): uWSGI's strict mode would refuse to start."""
    options, options_known = [], None
    for name in sorted(env):
        if not name.startswith("UWSGI_") or name in BY_NAME or name in ALIASES or name in UWSGI_INTERNAL \
                or name.startswith("UWSGI_EMPEROR_"):
            continue
        option = _uwsgi_option(name)
        options_known = known() if options_known is None else options_known
        if options_known is None or option in options_known:
            options.append((option, env[name]))
    return options


@cache
def uwsgi_known_options() -> set[str] | None:
    """Every option this image's uWSGI takes (`uwsgi --help`); None where
    there is no uWSGI to ask."""
    try:
        out = subprocess.run(["uwsgi", "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = set()
    for line in out.splitlines():
        for word in line.split(None, 1)[:1]:
            found.update(part[2:] for part in word.split("|") if part.startswith("--"))
    return found or None


def distance(a: str, b: str, most: int = 1 << 30) -> int:
    """Edits (insert, delete, change, swap of two neighbours) from a to b;
    past `most`, any number above it (the search stops there)."""
    previous2, previous = None, list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            best = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if previous2 is not None and i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                best = min(best, previous2[j - 2] + 1)
            row.append(best)
        if min(row) > most:
            return most + 1
        previous2, previous = previous, row
    return previous[-1]


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate a name is most likely a slip for: one edit away, two
    for long names; short names are left alone (PORTS may be the app's).
    Only candidates of a length within reach are compared: a Kubernetes
    pod's hundreds of service variables are checked in milliseconds."""
    if len(name) < 6:
        return None
    allowed = 1 if len(name) < 10 else 2
    near = [c for c in candidates if c != name and abs(len(c) - len(name)) <= allowed]
    scored = sorted((distance(name, c, allowed), c) for c in near)
    return scored[0][1] if scored and scored[0][0] <= allowed else None


def warnings(env: Mapping[str, str], mode: str,
             known: Callable[[], set[str] | None] = uwsgi_known_options) -> list[str]:
    """One line for each name that looks meant for flaskbox and is not a
    setting, naming the one it reads."""
    settings = sorted(BY_NAME)
    names = set(BY_NAME) | set(ALIASES) | set(REFUSED)
    out = []
    for name in sorted(env):
        if name in names:
            continue
        if name.upper() in names:
            out.append(f"{name} is not read: settings are upper case ({name.upper()})")
        elif name in ELSEWHERE:
            whose, ours = ELSEWHERE[name]
            out.append(f"{name} is not read here ({whose}): flaskbox reads {ours}")
        elif name.startswith("UWSGI_") and mode == PRODUCTION:
            out += _uwsgi_warning(name, env, settings, known)
        elif name.startswith("NGINX_"):
            nginx = [s for s in settings if s.startswith("NGINX_")] + ["NGINX_MAX_UPLOAD"]
            guess = closest(name, nginx)
            hint = f"did you mean {guess}? " if guess else ""
            out.append(f"{name} is not a flaskbox setting: {hint}nginx reads no variables; its settings here "
                       f"are {', '.join(nginx)}, and other directives go in /app/nginx.d/*.conf")
        else:
            guess = closest(name, settings)
            if guess:
                out.append(f"{name} is not a flaskbox setting: did you mean {guess}?")
    if mode == PRODUCTION:
        out += [f"{name}={env[name]} is removed from the app's environment in production (the debugger must "
                "never be reachable there): debug mode is `-d debug` (or APP_MODE=debug)"
                for name in ("FLASK_DEBUG", "FLASK_ENV") if env.get(name, "0") not in NOT_DEBUG]
    return [f"warning: {line}" for line in out]


def _uwsgi_warning(name: str, env: Mapping[str, str], settings: list[str],
                   known: Callable[[], set[str] | None]) -> list[str]:
    if name in UWSGI_INTERNAL or name.startswith("UWSGI_EMPEROR_"):
        return []
    options = known()
    option = _uwsgi_option(name)
    if options is None or option in options:
        return []
    guess = closest(name, settings)
    if guess is None:
        near = closest(option, sorted(options))
        guess = f"UWSGI_{near.upper().replace('-', '_')}" if near else None
    hint = f" (did you mean {guess}?)" if guess else ""
    return [f"{name} is neither a flaskbox setting nor an option of this uWSGI: left out{hint}"]
