"""Setting: one row of the settings table (table.py assembles them): its
name, default, accepted form and meaning."""

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

    def __post_init__(self):
        if not self.default_doc:
            if callable(self.default):
                raise ValueError(f"{self.name}: a computed default needs its default_doc")
            object.__setattr__(self, "default_doc", f"`{self.default}`" if self.default else "(empty)")

    def default_for(self, context: Context) -> str:
        return self.default(context) if callable(self.default) else self.default
