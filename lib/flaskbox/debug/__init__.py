"""Debug mode: the Flask dev server (python3 -m flaskbox.debug.server), its
warning, and the wait for a fix."""
