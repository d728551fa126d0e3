"""The settings of this start, resolved once (`python3 -m flaskbox prepare`,
after the hooks) and kept in RUNTIME_DIR/settings.json: render, the
arbiter, the uWSGI master (wsgi.py), the dev server (debug.py), the helpers
and the health check read them from there, typed, instead of parsing the
environment again.

Only RUNTIME_DIR itself comes from the environment, to find the record:
the user's value (or a hook's export, which the servers inherit) or the
default."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .layout import Runtime


@dataclass(frozen=True)
class Record:
    mode: str
    values: dict[str, Any]   # each setting, typed by its form (int, bool, list, text)
    text: dict[str, str]     # each setting as the configs spell it (10m, 0, a list's text)
    derived: dict[str, str]  # the numbers the configs need that follow from the settings
    # The user's own uWSGI options, as uwsgi.ini ends with them: UWSGI_INI's
    # (what flaskbox owns or names the app left out) and UWSGI_<OPTION>
    # variables', each a list of [option, value].
    uwsgi: dict[str, list[list[str]]] = field(default_factory=lambda: {"ini": [], "env": []})

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def runtime(env: Mapping[str, str] = os.environ) -> Runtime:
    value = env.get("RUNTIME_DIR") or Runtime.DEFAULT
    return Runtime(value.rstrip("/") if len(value) > 1 else value)


def write(record: Record, place: Runtime) -> None:
    """Whole or not at all: a reader never sees half a record."""
    part = place.record.with_name(place.record.name + ".part")
    part.write_text(json.dumps(asdict(record), indent=1, sort_keys=True) + "\n")
    part.replace(place.record)


def load(place: Runtime | None = None) -> Record:
    """The record of this start; OSError or ValueError when there is none."""
    data = json.loads((place or runtime()).record.read_text())
    return Record(data["mode"], data["values"], data["text"], data["derived"], data["uwsgi"])
