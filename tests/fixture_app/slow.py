"""An app whose import takes a while, like one that warms caches at start."""

import os
import time

time.sleep(float(os.environ.get("IMPORT_SECONDS", "6")))

from app import app  # noqa: E402,F401  (the fixture app, once the wait is over)
