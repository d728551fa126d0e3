"""Variables handed to the entry-point's shell as data, never as code: the
few commands that give the shell variables (file-vars, env-files, check)
print NUL-separated records, which lib/common.sh's flaskbox_assignments
reads with `read -d ''` and assigns. PID 1 evaluates nothing: a value is
only ever a value, whatever quotes, `$` or backquotes it holds. A value
cannot hold a NUL byte, as no environment variable can.

    export NAME VALUE   the variable, exported (a secret, a .env line)
    set NAME VALUE      the shell's own, not exported (the checked settings
                        its own steps use)
    unset NAME"""

from __future__ import annotations

import re
from collections.abc import Iterable

EXPORT, SET, UNSET = "export", "set", "unset"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def records(items: Iterable[tuple]) -> bytes:
    """(EXPORT or SET, name, value) and (UNSET, name) as the shell reads them."""
    out = bytearray()
    for how, name, *value in items:
        if how not in (EXPORT, SET, UNSET) or not NAME.fullmatch(name) or len(value) != (how != UNSET):
            raise ValueError(f"not a shell record: {how} {name}")
        fields = [how, name, *value]
        for field in fields:
            data = field if isinstance(field, bytes) else field.encode("utf-8", "surrogateescape")
            if b"\0" in data:
                raise ValueError(f"{name}: a NUL byte, which no variable can hold")
            out += data + b"\0"
    return bytes(out)
