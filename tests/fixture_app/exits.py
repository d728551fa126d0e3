"""The fixture app with an exit handler, as an SDK's last flush is (Sentry's,
OpenTelemetry's BatchSpanProcessor's): it says when it starts and when it
ends, with its pid, and takes EXIT_FLUSH_SECONDS in between."""

import atexit
import os
import sys
import time

from app import app  # noqa: F401  (the fixture app, with its routes)

FLUSH_SECONDS = float(os.environ.get("EXIT_FLUSH_SECONDS", "0.8"))


def flush() -> None:
    print(f"exit handler start pid={os.getpid()}", file=sys.stderr, flush=True)
    time.sleep(FLUSH_SECONDS)
    print(f"exit handler end pid={os.getpid()}", file=sys.stderr, flush=True)


atexit.register(flush)
