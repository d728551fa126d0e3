"""WORKER_CLASS=gevent: gevent's patches of the standard library (socket,
ssl, time.sleep, threading, ...), applied before the app is imported (app.ini,
[gevent] `import`), so that database drivers and HTTP clients written for
blocking I/O yield to other requests while they wait, and modules that take
`socket` or `threading` early get the patched ones.

Not uWSGI's gevent-early-monkey-patch: in uWSGI 2.0.31 it calls into Python
without holding the GIL and the master crashes at start (measured: a
segmentation fault in PyList_New, every time).

The image's gevent directory (app.ini's `pythonpath`, which uWSGI puts first
on sys.path) moves to the end first: an app that pins its own gevent,
greenlet or zope.* in the venv gets those, and the image's fill in only what
it lacks (issue 22; packages.py refuses a mix that cannot work).
"""

import sys

from flaskbox.layout import GEVENT_SITE

# uWSGI adds it as "/opt/venv/gevent/".
moved = [entry for entry in sys.path if entry.rstrip("/") == str(GEVENT_SITE)]
sys.path[:] = [entry for entry in sys.path if entry not in moved] + moved

from gevent import monkey  # noqa: E402

monkey.patch_all()
