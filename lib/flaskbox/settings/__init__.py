"""Every setting, once. Where each part lives:

    forms.py     the accepted forms: text in, typed value out (or ValueError)
    defaults.py  defaults computed from the container and earlier settings
    table.py     SETTINGS, the one table: name, default, form, meaning,
                 assembled from its chapters (table_*.py) in the docs' order
    setting.py   Setting, one row of it
    zh_cn.py     the table's words in Chinese, for docs/zh-CN
    names.py     the other names settings go by, and names that are none
    resolve.py   the environment turned into checked, typed settings, once

Constants that are not settings (the stop budget, header arithmetic, the
runtime files) are in ../layout.py; the record the servers read, in
../record.py.
"""

from ..host import Host
from ..layout import DEBUG, GEVENT, MODES, PRODUCTION, SYNC
from . import resolve as resolve_module
from .defaults import Context, capacity
from .forms import SettingError, size_bytes, strip_slash, words
from .names import ALIASES, REFUSED
from .resolve import Resolved, derived, resolve, uwsgi_options
from .table import BY_NAME, SETTINGS, Setting

__all__ = ["ALIASES", "BY_NAME", "DEBUG", "GEVENT", "MODES", "PRODUCTION", "REFUSED", "SETTINGS", "SYNC",
           "Context", "Host", "Resolved", "Setting", "SettingError", "capacity", "derived", "resolve",
           "resolve_module", "size_bytes", "strip_slash", "uwsgi_options", "words"]
