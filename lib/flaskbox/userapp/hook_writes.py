"""Imported by every Python of the venv (a line of flaskbox.pth), and does
nothing unless the entry-point set FLASKBOX_HOOK_WRITES=1 for a hook or a
one-off command: then writes next to the app's code that are refused are
named once it fails (refused_writes.watch_process), as the servers name
them at import."""

import os

if os.environ.get("FLASKBOX_HOOK_WRITES") == "1":
    from flaskbox.userapp import refused_writes

    refused_writes.watch_process()
