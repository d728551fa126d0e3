"""Why APP_MODULE's app did not load, said in one way in both modes (wsgi.py
in production, where the start then ends; debug.py in debug mode, where the
error is served until the next save): the traceback, unless it is the
setting that names no module (a setting to fix, said alone); then a file of
the app that hides a module the import needed (shadows.py), or a package
the app pinned too old for this Python (packages.py); then, for a package
that is not installed, how to install it (distributions.py)."""

from __future__ import annotations

import traceback

from .. import record
from ..log import error
from . import discover, shadows


def explain(exc: BaseException, app_module: str, says: bool = True) -> bool:
    """Says why (if `says`); True when APP_MODULE itself names no module
    (bad input, not an app that fails)."""
    message, bad_setting = None, False
    if isinstance(exc, ModuleNotFoundError):
        message, bad_setting = discover.missing_module(exc, app_module, install_on_start=install_on_start())
    if not says:
        return bad_setting
    if not bad_setting:
        traceback.print_exception(exc)
    hint = (shadows.hint(exc) or older_pin(exc)) if isinstance(exc, Exception) else None
    for said in (hint, message):
        if said:
            error(said)
    return bad_setting


def older_pin(exc: Exception) -> str | None:
    """packages.older_pin_hint, imported only now: it needs importlib.metadata,
    and so the standard library's email package, which a file of the app's
    own (email.py) may hide; the explanation must work even then."""
    try:
        from . import packages
    except ImportError:
        return None
    return packages.older_pin_hint(exc)


def install_on_start() -> bool:
    """INSTALL_ON_START of this start, from its record (debug mode alone
    allows it): then a restart installs a package, no image is built."""
    try:
        return record.load()["INSTALL_ON_START"] is True
    except (OSError, ValueError, KeyError):
        return False
