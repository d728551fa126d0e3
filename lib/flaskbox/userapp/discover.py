"""Which app to serve, found the way `flask run` finds it, the same in both
modes, for hooks and for the `flask` command.

APP_MODULE takes Flask's forms:
    module                 Flask looks inside: an `app` or `application`
                           attribute, else a `create_app` or `make_app` factory
    module:name            that attribute: a Flask app or any WSGI callable
    module:factory(args)   that factory, called with literal arguments
Unset, it comes from FLASK_APP (settings/names.py), else from a tiangolo-style
/app/uwsgi.ini (`module` and `callable`), else from the first of wsgi.py,
app.py and main.py in /app.

Finding the module (find_module) needs only the file system; checking what
it holds (load) imports it, and runs where the app runs: in uWSGI's master
in production, in the dev server in debug mode.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..layout import APP_DIR

# The files `flask run` looks for, and main.py, where tiangolo's image wanted it.
DEFAULT_FILES = ("wsgi.py", "app.py", "main.py")
MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class AppError(Exception):
    """APP_MODULE does not lead to a WSGI app; the message says what was
    found and what to write instead."""


# --- the setting, without importing anything ---------------------------------

def parse(value: str) -> tuple[str, str | None]:
    """('module', 'expression or None'); ValueError for anything else.
    The expression is a name or a call with literal arguments only, as Flask
    accepts: APP_MODULE never runs code of its own."""
    module, _, expression = value.partition(":")
    if not MODULE_PATH.fullmatch(module) or (value.endswith(":") and not expression):
        raise ValueError(value)
    if not expression:
        return module, None
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(value) from exc
    if isinstance(tree, ast.Name):
        return module, expression.strip()
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        try:
            for node in [*tree.args, *(keyword.value for keyword in tree.keywords)]:
                ast.literal_eval(node)
        except ValueError as exc:
            raise ValueError(value) from exc
        if all(keyword.arg for keyword in tree.keywords):
            return module, expression.strip()
    raise ValueError(value)


def from_file_name(value: str) -> str:
    """A file's name where a module's is meant, as Flask's FLASK_APP
    accepts it: app.py is app, ./src/app.py is src.app, myapp/wsgi.py:app
    is myapp.wsgi:app. Anything else is returned as it is."""
    module, colon, expression = value.partition(":")
    if not module.endswith(".py"):
        return value
    path = module[:-3].removeprefix("./").strip("/")
    return path.replace("/", ".") + colon + expression


def is_valid(value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def uwsgi_ini_app(path: Path) -> str | None:
    """The app a tiangolo-style uwsgi.ini names (`module = main`, `callable =
    app`, or `wsgi-file = main.py`), as APP_MODULE would write it."""
    options = read_uwsgi_ini(path)
    module = next((value for key, value in reversed(options) if key in ("module", "wsgi")), None)
    if module is None:
        wsgi_file = next((value for key, value in reversed(options) if key == "wsgi-file"), None)
        if wsgi_file:
            module = Path(wsgi_file).with_suffix("").name
    if not module:
        return None
    callable_name = next((value for key, value in reversed(options) if key == "callable"), None)
    if callable_name and ":" not in module:
        return f"{module}:{callable_name}"
    return module


def read_uwsgi_ini(path: Path) -> list[tuple[str, str]]:
    """The `key = value` lines of an ini's [uwsgi] section, in order (uWSGI
    allows a key more than once)."""
    options, section = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == "uwsgi" and "=" in line:
            key, _, value = line.partition("=")
            options.append((key.strip(), value.strip()))
    return options


def is_sample(app_dir: Path, fingerprint: Path) -> bool:
    """True when /app/app.py is the image's own sample app, unchanged."""
    import hashlib

    try:
        expected = fingerprint.read_text().split()[0]
        actual = hashlib.sha256((app_dir / "app.py").read_bytes()).hexdigest()
    except (OSError, IndexError):
        return False
    return actual == expected


def code_besides_sample(app_dir: Path) -> list[str]:
    """What else /app holds that looks like an app's code: packages, and
    modules other than the sample's."""
    found = [f"{name}/" for name in packages(app_dir)]
    found += sorted(p.name for p in app_dir.glob("*.py") if p.name != "app.py")
    return found


def packages(app_dir: Path) -> list[str]:
    if not app_dir.is_dir():
        return []
    return sorted(p.name for p in app_dir.iterdir() if (p / "__init__.py").is_file())


def find_module(app_dir: Path = APP_DIR, ini: Path | None = None) -> tuple[str, str]:
    """(APP_MODULE, where it came from) when neither APP_MODULE nor
    FLASK_APP is set."""
    ini = ini or app_dir / "uwsgi.ini"
    if ini.is_file():
        found = uwsgi_ini_app(ini)
        if found:
            return found, str(ini)
    for name in DEFAULT_FILES:
        # A module, or a package of that name, as `flask run` imports either.
        if (app_dir / name).is_file() or (app_dir / name[:-3] / "__init__.py").is_file():
            return name[:-3], f"{app_dir / name}"
    raise AppError(f"no app to serve: APP_MODULE is not set and {app_dir} has no "
                   f"{', '.join(DEFAULT_FILES[:-1])} or {DEFAULT_FILES[-1]}{_what_is_there(app_dir)}")


def _what_is_there(app_dir: Path) -> str:
    """What /app holds instead of a default file, and what to set for it."""
    found = packages(app_dir)
    if found:
        return (f"; {app_dir} holds the package{'s' if len(found) > 1 else ''} {', '.join(found)}: set "
                f"APP_MODULE={found[0]} (Flask finds its app or create_app factory)")
    modules = sorted(p.stem for p in app_dir.glob("*.py")) if app_dir.is_dir() else []
    if modules:
        return (f"; {app_dir} holds {', '.join(m + '.py' for m in modules)}: set APP_MODULE to the one that "
                f"makes the app, e.g. APP_MODULE={modules[0]}")
    if app_dir.is_dir() and not any(app_dir.iterdir()):
        return (f"; {app_dir} is empty: a bind mount of a folder that did not exist makes an empty one "
                f"(-v \"$PWD/app:{app_dir}\" run from a project whose code is in $PWD itself wants "
                f"-v \"$PWD:{app_dir}\")")
    return f"; copy your app into {app_dir} (docs/your-app.md)"


# --- what the module holds (imports it) --------------------------------------

@dataclass
class Found:
    app: object
    flask: bool
    static_folder: str | None = None
    static_url_path: str | None = None

    def describe(self) -> dict:
        return {"flask": self.flask, "static_folder": self.static_folder,
                "static_url_path": self.static_url_path}


def _flask():
    """Flask's own discovery, where Flask is installed (a non-Flask app's
    image may not have it). Imported only now: settings and rendering use
    the standard library alone."""
    try:
        from flask import Flask, cli
    except ImportError:
        return None, None
    return Flask, cli


def _wsgi_signature(obj) -> bool:
    """A function that takes (environ, start_response): a WSGI app itself,
    not a factory that makes one."""
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    # A factory's parameters have defaults (create_app(config=None)); a WSGI
    # app's two do not, and are usually named so.
    return len(required) >= 2 or [p.name for p in positional[:2]] == ["environ", "start_response"]


def _check_wsgi(obj, what: str, value: str):
    """obj if it can serve as a WSGI app; AppError saying what it is else."""
    call = obj.__call__ if callable(obj) and not inspect.isfunction(obj) else None
    if inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(call):
        raise AppError(f"APP_MODULE='{value}': {what} is an ASGI app (async); this image serves WSGI apps "
                       "(Flask, Django, any callable taking environ and start_response)")
    if inspect.isclass(obj):
        raise AppError(f"APP_MODULE='{value}': {what} is a class, not an app: name an instance of it")
    if inspect.isfunction(obj) and not _wsgi_signature(obj):
        module = value.partition(":")[0]
        raise AppError(f"APP_MODULE='{value}': {what} is a function taking no (environ, start_response): "
                       f"an app factory, not an app. Call it: APP_MODULE='{module}:{what}()' (arguments "
                       f"allowed, e.g. {what}('production')), or write APP_MODULE='{module}' "
                       "and Flask finds it")
    if not callable(obj):
        raise AppError(f"APP_MODULE='{value}': {what} is a {type(obj).__name__}, not a WSGI app")
    return obj


def load(value: str, app_dir: Path = APP_DIR) -> Found:
    """Imports APP_MODULE's module from app_dir and returns its app. An
    import error (a SyntaxError, a missing package) propagates with its
    traceback; an app that is not there raises AppError."""
    module_name, expression = parse(value)
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(module_name)
    Flask, cli = _flask()
    if expression is None:
        app = _find_in_module(module, value, Flask, cli)
    elif "(" in expression:
        app = _call_factory(module, expression, value, Flask, cli)
    else:
        if not hasattr(module, expression):
            raise AppError(f"APP_MODULE='{value}': module {module_name} has no attribute {expression!r}")
        app = _check_wsgi(getattr(module, expression), expression, value)
    is_flask = Flask is not None and isinstance(app, Flask)
    if not is_flask:
        return Found(app, False)
    folder = app.static_folder if app.has_static_folder else None
    return Found(app, True, folder, app.static_url_path if folder else None)


def missing_module(exc: ModuleNotFoundError, value: str, app_dir: Path = APP_DIR,
                   install_on_start: bool = False) -> tuple[str, bool]:
    """What to say of a ModuleNotFoundError while APP_MODULE loads, and
    whether it is APP_MODULE itself that is not there (a setting to fix,
    not an app that fails). INSTALL_ON_START=1 changes the advice for a
    package: a restart installs it (distributions.py)."""
    module_name, _ = parse(value)
    if exc.name == module_name:
        return (f"APP_MODULE='{value}': there is no module {module_name} in {app_dir} (nor installed); "
                "expected a module or package of your app, as in APP_MODULE=app or APP_MODULE=mypackage:"
                "create_app()"), True
    from .distributions import install_hint

    return install_hint(exc.name or "", app_dir / "requirements.txt", install_on_start), False


def _best_app(cli, module):
    """Flask's own search of a module. Flask 2.0's takes a ScriptInfo first,
    which it passes only to a factory that asks for one (none here)."""
    if "script_info" in inspect.signature(cli.find_best_app).parameters:
        return cli.find_best_app(None, module)
    return cli.find_best_app(module)


def _find_in_module(module, value: str, Flask, cli):
    if Flask is not None:
        try:
            return _best_app(cli, module)
        except cli.NoAppException as exc:
            flask_error = exc
    else:
        flask_error = None
    # Not a Flask app: a WSGI callable where uWSGI and Django look for it.
    for name in ("application", "app"):
        if hasattr(module, name):
            return _check_wsgi(getattr(module, name), name, value)
    from .shadows import package_hides_module

    reason = f" ({flask_error})" if flask_error else ""
    reason += package_hides_module(module)
    raise AppError(f"APP_MODULE='{value}': module {module.__name__} has no app{reason}. Name it: "
                   f"APP_MODULE='{module.__name__}:<name>' for an app, '{module.__name__}:<factory>()' "
                   "for a factory")


def _call_factory(module, expression: str, value: str, Flask, cli):
    call = ast.parse(expression, mode="eval").body
    name = call.func.id
    factory = getattr(module, name, None)
    if factory is None:
        raise AppError(f"APP_MODULE='{value}': module {module.__name__} has no attribute {name!r}")
    if not callable(factory):
        raise AppError(f"APP_MODULE='{value}': {name} is a {type(factory).__name__}, not a factory to call")
    args = [ast.literal_eval(node) for node in call.args]
    kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as exc:
        raise AppError(f"APP_MODULE='{value}': {name} does not take these arguments ({exc})") from exc
    except ValueError:
        pass  # no signature to check (a builtin): let the call say
    return _check_wsgi(factory(*args, **kwargs), f"what {expression} returned", value)
