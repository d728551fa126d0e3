"""An app whose every worker dies as it starts: an at-fork hook that aborts,
as a broken C extension or a bad hook would. The master itself is fine."""

import os

from app import app  # noqa: F401  (the fixture app)

os.register_at_fork(after_in_child=os.abort)
