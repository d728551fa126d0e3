"""A file of the app named like a module it or its libraries import (email.py,
random.py, flask.py, a `requests` folder) hides that module: /app comes
first on sys.path. The import then fails far from the cause ("No module
named 'email.utils'; 'email' is not a package", "partially initialized
module 'random'"). When an import fails, hint() names the file if the
error or its traceback involves it, and says to rename it."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from ..layout import APP_DIR


def _names(app_dir: Path) -> dict[str, Path]:
    """The app's top-level modules and packages: name -> file or folder."""
    found: dict[str, Path] = {}
    try:
        for path in app_dir.iterdir():
            if path.suffix == ".py" and path.is_file():
                found.setdefault(path.stem, path)
            elif (path / "__init__.py").is_file():
                found[path.name] = path
    except OSError:
        pass
    return found


def _others() -> set[str]:
    """Modules the app's own may hide: the standard library's and the
    installed packages'."""
    try:
        # Imported only now: importlib.metadata imports email, which the
        # app's own email.py may be hiding.
        from importlib import metadata

        installed = set(metadata.packages_distributions())
    except Exception:  # noqa: BLE001 (a broken distribution must not hide the real error)
        installed = set()
    return set(sys.stdlib_module_names) | installed


def shadowing(app_dir: Path = APP_DIR) -> dict[str, Path]:
    others = _others()
    return {name: path for name, path in _names(app_dir).items() if name in others}


def hint(exc: BaseException, app_dir: Path = APP_DIR) -> str | None:
    """The line naming the app's file that hides a module, when the failed
    import shows its name (the message, or a module of the traceback)."""
    found = shadowing(app_dir)
    if not found:
        return None
    text = "".join(traceback.format_exception(exc))
    involved = [name for name in found if f"'{name}'" in text or f"'{name}." in text
                or f"{app_dir}/{name}.py" in text or f"{app_dir}/{name}/" in text]
    if not involved:
        return None
    named = ", ".join(f"{found[name]}{'/' if found[name].is_dir() else ''} (hides {name})"
                      for name in involved)
    return (f"{named}: a file of your app named like a module that your app or a library imports takes its "
            "place, since /app comes first on the import path; rename it (and its imports)")


def package_hides_module(module, app_dir: Path = APP_DIR) -> str:
    """' (...)' when the module imported is a package beside a file of the
    same name (app/ and app.py): Python takes the package."""
    file = getattr(module, "__file__", "") or ""
    name = module.__name__.partition(".")[0]
    if file.endswith("__init__.py") and (app_dir / f"{name}.py").is_file():
        return (f" ({app_dir}/{name}/ is a package, which Python imports instead of {app_dir}/{name}.py: "
                "rename one of them, or name the app inside the package)")
    return ""
