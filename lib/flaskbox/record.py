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

from .layout import Runtime

FIELDS = ("mode", "values", "text", "derived", "uwsgi")


class Record:
    """A plain class, not a dataclass: the arbiter (PID 1) loads it, and
    dataclasses' import (inspect, ast) is 1.5 MB of its memory."""

    def __init__(self, mode: str, values: dict[str, object], text: dict[str, str], derived: dict[str, str],
                 uwsgi: dict[str, list[list[str]]] | None = None):
        self.mode = mode
        self.values = values    # each setting, typed by its form (int, bool, list, text)
        self.text = text        # each setting as the configs spell it (10m, 0, a list's text)
        self.derived = derived  # the numbers the configs need that follow from the settings
        # The user's own uWSGI options, as uwsgi.ini ends with them: UWSGI_INI's
        # (what flaskbox owns or names the app left out) and UWSGI_<OPTION>
        # variables', each a list of [option, value].
        self.uwsgi = uwsgi if uwsgi is not None else {"ini": [], "env": []}

    def __getitem__(self, name: str):
        return self.values[name]

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in FIELDS}

    def __eq__(self, other) -> bool:
        return isinstance(other, Record) and self.as_dict() == other.as_dict()


def runtime(env: Mapping[str, str] = os.environ) -> Runtime:
    value = env.get("RUNTIME_DIR") or Runtime.DEFAULT
    return Runtime(value.rstrip("/") if len(value) > 1 else value)


def write(record: Record, place: Runtime) -> None:
    """Whole or not at all: a reader never sees half a record."""
    part = place.record.with_name(place.record.name + ".part")
    part.write_text(json.dumps(record.as_dict(), indent=1, sort_keys=True) + "\n")
    part.replace(place.record)


def load(place: Runtime | None = None) -> Record:
    """The record of this start; OSError or ValueError when there is none."""
    data = json.loads((place or runtime()).record.read_text())
    return Record(*(data[name] for name in FIELDS))
