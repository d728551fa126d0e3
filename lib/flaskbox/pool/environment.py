"""uWSGI's `env` and `unenv` options (UWSGI_INI, a tiangolo-style
/app/uwsgi.ini), in os.environ.

uWSGI sets them in the process's environment as it reads its options. It
now runs as a module of python3 (the Dockerfile: pyuwsgi), whose
os.environ was read at its start, before that: without this, the app's
os.environ would lack them (os.getenv("DATABASE_URL") None where a
program embedding Python had it).
"""

from __future__ import annotations

import ctypes
import os


def the_processes() -> dict[bytes, bytes]:
    """The process's environment as C sees it now (libc's `environ`)."""
    environ = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    found = {}
    index = 0
    while (entry := environ[index]) is not None:
        key, _, value = entry.partition(b"=")
        if key:
            found.setdefault(key, value)  # the first of a repeated name, as getenv()
        index += 1
    return found


def follow() -> None:
    """os.environ made what the process's environment is."""
    now = the_processes()
    environ = os.environb
    for key in [key for key in environ if key not in now]:
        del environ[key]
    for key, value in now.items():
        if environ.get(key) != value:
            environ[key] = value
