"""A fake host for resolving settings without a container: the CPUs,
memory, file systems, kernel limits and ports a test gives it stand in for
the kernel's files (lib/flaskbox/host.py reads the real ones). resolve()
and rendered() are the settings tests' two calls through it."""

import atexit
import shutil
import tempfile
from pathlib import Path

from flaskbox import settings
from flaskbox.host import Host, Mount
from flaskbox.start import render
from helpers import REPO

GiB = 1 << 30

# An /app with an app.py, as the sample image has.
SAMPLE_APP = Path(tempfile.mkdtemp(prefix="flaskbox-app-"))
(SAMPLE_APP / "app.py").write_text("app = None\n")
atexit.register(shutil.rmtree, SAMPLE_APP, ignore_errors=True)


class FakeHost(Host):
    """A container with the given CPUs, memory and RUNTIME_DIR file system,
    an /app with an app.py (or `app_dir`), and `taken` ports something
    already listens on ({port: [address, ...]})."""

    def __init__(self, cpus=2, memory=None, mount=None, somaxconn=4096, port_start=0, files=1 << 20,
                 app_dir=SAMPLE_APP, counts_headers=True, pids=None, taken=None):
        super().__init__("/nonexistent")
        self._pids = pids
        self._counts_headers = counts_headers
        self._app_dir = Path(app_dir)
        self._cpus, self._memory = cpus, memory
        self._mount = mount or Mount("/", "overlay", 100 * GiB)
        self._somaxconn, self._port_start, self._files = somaxconn, port_start, files
        self._taken = taken or {}

    @property
    def app_dir(self):
        return self._app_dir

    def cpus(self):
        return self._cpus

    def memory_limit(self):
        return self._memory

    def mount_of(self, path):
        return self._mount

    def somaxconn(self):
        return self._somaxconn

    def unprivileged_port_start(self):
        return self._port_start

    def open_files_limit(self):
        return self._files

    def nginx_counts_headers(self):
        return self._counts_headers

    def pids_limit(self):
        return self._pids

    def listeners(self, port):
        return self._taken.get(port, [])


def resolve(env=None, mode="production", host=None):
    return settings.resolve(mode, env or {}, host or FakeHost())


def rendered(tmp_path, env=None):
    """The production configs rendered under tmp_path/run: the resolved
    settings, and each file's text by name."""
    resolved = resolve({"RUNTIME_DIR": str(tmp_path / "run"), **(env or {})})
    paths = render.render_production(resolved.record(), REPO)
    return resolved, {path.name: path.read_text() for path in paths}
