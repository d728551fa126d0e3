"""WORKER_CLASS=gevent: gevent's patches of the standard library (socket,
ssl, time.sleep, threading, ...), applied before the app is imported (app.ini,
[gevent] `import`), so that database drivers and HTTP clients written for
blocking I/O yield to other requests while they wait, and modules that take
`socket` or `threading` early get the patched ones.

Not uWSGI's gevent-early-monkey-patch: in uWSGI 2.0.31 it calls into Python
without holding the GIL and the master crashes at start (measured: a
segmentation fault in PyList_New, every time).
"""

from gevent import monkey

monkey.patch_all()
