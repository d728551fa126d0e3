"""SETTINGS, the one table: each setting's name, default, accepted form and
meaning. Defaults, checks, the usage text and the docs' tables (English
here, Chinese in zh_cn.py) read it; a new setting is one entry in its
chapter, one in zh_cn.py, and its use in a template or in the record's
readers, which its entry lists (`enforced`: setting.py says how).

The table is assembled from its chapters, in the docs' order:

    table_app.py      the app: mode, port, where it writes, which app, a
                      request's, an import's and a reload's bounds
    table_pool.py     the uWSGI pool: worker class, processes, threads,
                      memory, gevent's connections and streams
    table_nginx.py    nginx in front: its workers, the queue, one client's
                      share, the disk for bodies
    table_urls.py     the URL prefix and static files
    table_traffic.py  logs, metrics, shared ports, proxies, host names
    table_start.py    the start's hooks and files, and debug mode's own
    table_tls.py      TLS at the edge, compression, HSTS

Each row is a Setting (setting.py).
"""

from __future__ import annotations

from . import table_app, table_nginx, table_pool, table_start, table_tls, table_traffic, table_urls
from .setting import Setting

__all__ = ["BY_NAME", "SETTINGS", "Setting"]

SETTINGS: tuple[Setting, ...] = (
    *table_app.SETTINGS,
    *table_pool.SETTINGS,
    *table_nginx.SETTINGS,
    *table_urls.SETTINGS,
    *table_traffic.SETTINGS,
    *table_start.SETTINGS,
    *table_tls.SETTINGS,
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
