"""Setting: one row of the settings table (table.py assembles them): its
name, default, accepted form and meaning, and where it is enforced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .defaults import Context
from .forms import Form


@dataclass(frozen=True)
class Setting:
    name: str
    # The default: a fixed text, or computed from the mode, the container
    # (host) and the settings before it in the table.
    default: str | Callable[[Context], str]
    form: str
    # The form's function: the typed value, or ValueError.
    parse: Form
    doc: str
    # How the docs state the default; a fixed one states itself.
    default_doc: str = ""
    normalize: Callable[[str], str] = field(default=lambda value: value)
    # "auto" (as tiangolo's image allowed) means the computed default.
    accepts_auto: bool = False
    # Every place that acts on the setting once it is given: the checks
    # that hold it against other settings, the configs rendered from it, and
    # the servers and scripts that read it, so that a change to what it
    # means starts from the whole list. Each entry is either
    #   "module.name"  a function or class of flaskbox, dotted from
    #                  lib/flaskbox: "guards.Watchdog", "settings.resolve.derived"
    #   "path: text"   a template or script, from the repository's root, and
    #                  a directive or function in it: "nginx.conf: proxy_read_timeout"
    # with what happens there in parentheses where the name does not say.
    # tests/test_setting_enforcement.py checks that each one exists and that
    # every place that reads the setting by name is listed.
    enforced: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.default_doc:
            if callable(self.default):
                raise ValueError(f"{self.name}: a computed default needs its default_doc")
            object.__setattr__(self, "default_doc", f"`{self.default}`" if self.default else "(empty)")

    def default_for(self, context: Context) -> str:
        return self.default(context) if callable(self.default) else self.default
