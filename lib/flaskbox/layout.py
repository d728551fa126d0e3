"""The image's fixed facts, which are not settings: the modes and worker
classes, the stop's budget, the header and buffer arithmetic the configs
share, paths in the image, and the files flaskbox keeps in RUNTIME_DIR.
Imported by the per-request modules too, so it imports nothing of flaskbox."""

from __future__ import annotations

import signal
from pathlib import Path

PRODUCTION, DEBUG = "production", "debug"
# Where the app lives, in every mode.
APP_DIR = Path("/app")
MODES = (PRODUCTION, DEBUG)
SYNC, GEVENT = "sync", "gevent"

# How a stop spends STOP_TIMEOUT, the orchestrator's grace period before
# its SIGKILL (settings table): the last MARGIN seconds stay for the exit
# itself (the log's last lines); before them, each server is killed
# KILL_AFTER seconds past its own limit, uWSGI's workers get MERCY seconds
# from their SIGTERM at the least (nginx cut what they still run; what runs
# late shares nginx's KILL_AFTER: arbiter/stop.py), and nginx drains for the
# rest (stop_drain). Docker's 10 s leaves nginx 5 s: 5 + 1 + 2 + 1 + 1 = 10.
STOP_MERCY_SECONDS = 2
STOP_KILL_AFTER_SECONDS = 1
STOP_MARGIN_SECONDS = 1
STOP_TIMEOUT_SECONDS = 10
# A drain of 1 s at the least: nginx's worker_shutdown_timeout of 0 is none.
STOP_TIMEOUT_LEAST = 6


def stop_drain(timeout: int) -> int:
    """How long nginx drains within a stop of `timeout` seconds."""
    return timeout - STOP_MARGIN_SECONDS - 2 * STOP_KILL_AFTER_SECONDS - STOP_MERCY_SECONDS


def exit_budget(timeout: int) -> int:
    """What a stop of `timeout` seconds with nothing to drain leaves idle
    workers for their exit (the app's exit handlers: an SDK's last flush),
    before their master's last second: a crash loop's end and a reload's
    old code get no more, however long RELOAD_GRACE is."""
    return timeout - STOP_MARGIN_SECONDS - STOP_KILL_AFTER_SECONDS


# The default's drain (the deploy/ files and their tests cite it).
STOP_DRAIN_SECONDS = stop_drain(STOP_TIMEOUT_SECONDS)
# Streams and WebSockets never finish by themselves, so before nginx drains,
# each uWSGI worker gets this signal and ends its own cleanly (streams.py).
# Ignored by default, and unused by uWSGI's workers (not SIGWINCH: a Python
# handler for it never ran in a worker, measured).
STOP_STREAMS_SIGNAL = "URG"

# The container's exit codes, every one the image's own code ends with: the
# README's table lists them (tests/test_docs_numbers.py holds it to these).
# A uWSGI master that was to load the app says why it could not in one of
# them, which the arbiter reads (arbiter/generation.py) and exits with.
# entry-point.sh and lib/*.sh are bash, and say 1, 2 and 128 + N as numbers.
STOPPED = 0              # a clean stop
FAILED = 1               # a start that failed, not for the settings; a server that ended by itself
BAD_INPUT = 2            # a setting, the command line, a rule nginx rejects: named in the log
POOL_FAILED = 3          # uWSGI forked workers again and again and none started (forks.py)
IMPORT_FAILED = 22       # uWSGI's need-app: the import raised (the traceback is in the log)
NOT_AN_APP = BAD_INPUT   # APP_MODULE names no app (discover.AppError; said in the log)
ARBITER_FAILED = 70      # EX_SOFTWARE: the arbiter's own failure, its traceback in the log
RUNTIME_UNWRITABLE = 73  # EX_CANTCREAT: flaskbox's own files, not the app
IMPORT_TIMED_OUT = 124   # past IMPORT_TIMEOUT (importing.Deadline), as GNU timeout says it
EXIT_CODES = (STOPPED, FAILED, BAD_INPUT, POOL_FAILED, IMPORT_FAILED, ARBITER_FAILED, RUNTIME_UNWRITABLE,
              IMPORT_TIMED_OUT)
# Not the container's: a uWSGI master whose app's import left threads
# running or connections shared tells the arbiter so, which starts the pool
# again with lazy-apps (pool/preload.py; EX_TEMPFAIL, "try again").
LOADS_IN_EACH_WORKER = 75
# Nor this: uWSGI's own exit of a worker it ends (end_me), which a lazy-apps
# worker ended while it still imports the app exits with too (forks.py).
UWSGI_ENDED = 30
# A server killed by signal N, and so the container: 128 + N, as a shell
# says it. A stop (SIGTERM, SIGINT, SIGQUIT) during the start, before the
# servers serve, ends it with 128 + its signal too, from bash and from the
# arbiter alike: 143, 130, 131.
SIGNALLED = 128
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
STOPPED_STARTING = tuple(SIGNALLED + number for number in STOP_SIGNALS)

# Request headers. nginx takes a request line or header line of at most
# MAX_LINE_SIZE bytes (a setting) and header_buffers() such lines' worth of
# header in all (plus the first 1 KB buffer); beyond, it answers 414 or 400
# itself. uWSGI holds a request's variables in one 64 KB block
# (uwsgi.buffer_size is 16 bits); what does not fit is a 502 ("unable to
# add ... to uwsgi packet"). A header line of n bytes on the wire ("ab:\r\n",
# 5, at least, with a name of its own: uWSGI joins lines of one name)
# becomes "HTTP_AB" plus two 2-byte lengths there: n + 6 bytes. So the
# variables of a header of W bytes in L lines take W + 6 L, plus the request
# line again (REQUEST_URI, then PATH_INFO or QUERY_STRING) and the ~1.5 KB
# nginx and uWSGI add.
# - nginx with max_headers (upstream's since 1.27; Debian 12 backports it)
#   bounds L at MAX_HEADER_LINES: W + S + 6 x 1000 + 1.5 KB for lines of S.
# - without it, L is bounded only by W: 2- and 3-byte names make 2.25 W of
#   variables (computed: 4 buffers of 8 KB held ~6700 lines, 74 KB, a 502).
# The buffers are as many as keep the worst case inside the block, at most
# nginx's default 4: 4 x 8 KB and 2 x 16 KB take the same 33 KB of header.
HEADER_FIRST_BUFFER = 1024
MAX_HEADER_LINES = 1000
UWSGI_BUFFER_SIZE = 65535
UWSGI_VARS_OVERHEAD = 1536
# The longest line the setting takes: one 24 KB line and its copy leave
# room in the block for the rest of the header on either kind of nginx.
MAX_LINE_LIMIT = 24 * 1024


def header_buffers(line: int, nginx_counts_headers: bool) -> int:
    """nginx's large header buffers of `line` bytes (see above)."""
    room = UWSGI_BUFFER_SIZE - UWSGI_VARS_OVERHEAD
    if nginx_counts_headers:
        header = room - line - 6 * MAX_HEADER_LINES
    else:
        header = room * 4 // 9  # 2.25 W fits
    return max(1, min(4, (header - HEADER_FIRST_BUFFER) // line))


def uwsgi_max_vars(line: int, buffers: int) -> int:
    """The most variables a request can make: one per 4-byte header line,
    plus the ones uWSGI and nginx add."""
    return (HEADER_FIRST_BUFFER + buffers * line) // 4 + 64


def response_header_buffer(line: int) -> int:
    """nginx's buffer for the header of the app's answer (proxy_buffer_size):
    room for an admitted request line twice over (a redirect that echoes it,
    percent-encoded again, as /login/?next=<the URL> does) beside the
    usual 16 KB of headers, so that no admitted request makes the app's
    answer too big for it (a 502)."""
    return 2 * line + PROXY_BUFFER_BYTES


# nginx connection slots, across all its workers: each costs ~0.42 KB of
# RSS from the start (figures in docs/BENCHMARKS.md, "Memory"). 8192 leave
# room for thousands of idle or slow connections: 3000 half-sent headers
# from one address must not lock everyone else out
# (tests/test_client_limits.py).
NGINX_CONNECTIONS_TOTAL = 8192
# Of those, requests with a body may take half, and so may static downloads
# (nginx.conf, per-client limits): trickled bodies or slow readers from many
# addresses then leave the other half to everything else.
BODY_SLOTS = NGINX_CONNECTIONS_TOTAL // 2

# Bodies past this many bytes are written to RUNTIME_DIR while they arrive
# (client_body_buffer_size); nginx.conf counts a request as an upload, which
# takes an UPLOAD_SPACE slot, when its Content-Length has 5 digits or more
# (10000 bytes and up, a conservative match for "over 16 KB") or it is chunked.
BODY_BUFFER = "16k"
# What a form adds around a file of MAX_BODY_SIZE (its boundaries, the file
# part's headers, a CSRF token and a few fields): nginx admits that much
# more, so that MAX_BODY_SIZE=10m takes a 10 MiB file in a form (a file of
# exactly the limit was refused with 413: the body was some 200 bytes over).
# A sixteenth of a smaller limit: MAX_BODY_SIZE=1k still means about 1k.
FORM_ALLOWANCE = 64 * 1024


def body_limit(max_body: int) -> int:
    """nginx's client_max_body_size for MAX_BODY_SIZE (0: no limit)."""
    return max_body + min(FORM_ALLOWANCE, max_body // 16) if max_body else 0

def stream_slots(worker_connections: int) -> int:
    """With gevent, how many of a process's WORKER_CONNECTIONS streams and
    WebSockets may hold at once. A tenth stays for ordinary requests: once
    streams held every slot, ordinary requests waited behind them (measured:
    2000 streams on 2000 slots, ordinary p99 3.9 s); beyond this, a new
    stream or WebSocket gets 503 with Retry-After (serve.py)."""
    return worker_connections - worker_connections // 10


# The image's virtualenv (Dockerfile, stage build): requirements.txt, uWSGI
# (pyuwsgi) and the app's own packages; app.ini's py-executable names its
# python3.
VENV = Path("/opt/venv")

# gevent and its dependencies (lib/gevent-requirements.txt), on sys.path with
# WORKER_CLASS=gevent only (app.ini): Flask-SocketIO and python-engineio pick
# gevent whenever they can import it, which breaks them under the sync
# workers and the dev server.
GEVENT_SITE = VENV / "gevent"

# Static files when neither STATIC_URL/STATIC_PATH nor the app say where
# (static.py): Flask's own defaults, and tiangolo's image's.
STATIC_URL_FALLBACK = "/static"
STATIC_PATH_FALLBACK = "/app/static"

# The sample app's fingerprint, written when the default image is built
# (Dockerfile, stage sample).
SAMPLE_FINGERPRINT = Path("/etc/flaskbox/sample-app.sha256")

# Retry-After, in seconds, on 503 answers to overload and limits.
RETRY_AFTER_SECONDS = 5

# nginx's buffers for one response from uWSGI (proxy_buffers): a response up
# to RESPONSE_MEMORY_BYTES frees its worker at once without touching disk;
# a larger one is spooled to RUNTIME_DIR within RESPONSE_SPACE (serve.Spool).
PROXY_BUFFER_BYTES = 16 * 1024
PROXY_BUFFERS = 16
RESPONSE_MEMORY_BYTES = (PROXY_BUFFERS + 1) * PROXY_BUFFER_BYTES
# How long nginx waits for a client that takes nothing of its response
# (send_timeout); uWSGI waits for nginx 5 s longer (UWSGI_SOCKET_TIMEOUT).
SEND_TIMEOUT_SECONDS = 30

# What a Host (or a trusted proxy's X-Forwarded-Host) may be: a host name
# (letters, digits, `-` and `_`, in dot-separated labels, with an optional
# trailing dot: an absolute name is the same host), an IPv4 address, or an
# IPv6 literal in brackets; then an optional port from 1 to 65535, no
# leading zero. Nothing else: no userinfo (`a.example:@evil`), no empty port
# (`a.example:`), no port Werkzeug would refuse (`:0`, `:99999`: the app
# would see an empty host), no IPv6 zone. nginx.conf refuses any other Host
# with 400 (its ${HOST_NAME_FORM} and ${PORT_FORM}); serve.py holds
# X-Forwarded-Host to it.
HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
PORT_FORM = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
HOST_NAME_FORM = rf"(?:{HOST_LABEL}(?:\.{HOST_LABEL})*\.?|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\])"
HOST_FORM = rf"{HOST_NAME_FORM}(?::{PORT_FORM})?"
# What a trusted proxy's X-Forwarded-Prefix may be (forwarded.py, prefix.py),
# the SCRIPT_NAME every url_for and redirect begins with: a path of
# segments, none empty, `.` or `..`. Never `//evil.example`, which a browser
# reads as another host (an open redirect), nor `/a/../b`.
PREFIX_FORM = r"(?:/|(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~%-]+)+/?)"

# A W3C traceparent nginx.conf logs the trace id of (its ${TRACEPARENT_FORM},
# in one map for each LOG_FORMAT): version 00's form, not version ff, no
# all-zero ids; the id is the capture flaskbox_tid.
TRACEPARENT_FORM = (r"^(?!ff)[0-9a-f]{2}-(?!0{32})(?<flaskbox_tid>[0-9a-f]{32})-(?!0{16})[0-9a-f]{16}"
                    r"-[0-9a-f]{2}$")


class Runtime:
    """The files flaskbox writes in RUNTIME_DIR, named in one place
    (healthcheck.sh reads health-port under the same default)."""

    DEFAULT = "/tmp/flaskbox"

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.record = self.dir / "settings.json"        # the resolved settings (record.py)
        self.nginx_dir = self.dir / "nginx"
        self.nginx_conf = self.nginx_dir / "nginx.conf"
        self.nginx_pid = self.nginx_dir / "nginx.pid"     # written once nginx holds its ports
        self.static_conf = self.nginx_dir / "static.conf"
        # The body limit and the upload slots it sizes (start/body.py): the
        # loaded app's MAX_CONTENT_LENGTH may change them, as it does static.conf.
        self.body_conf = self.nginx_dir / "body-limit.conf"
        self.upload_conf = self.nginx_dir / "upload-limits.conf"
        self.uwsgi_ini = self.dir / "uwsgi.ini"
        self.uwsgi_sockets_ini = self.dir / "uwsgi-sockets.ini"
        # One folder per generation of the uWSGI pool (a reload starts a
        # new one beside the old: arbiter/generation.py), and `current`,
        # the link to the one nginx sends requests to, swapped in one rename.
        self.uwsgi_dir = self.dir / "uwsgi"
        self.current = Generation(self.uwsgi_dir / "current")
        self.stats_socket = self.current.stats_socket
        self.status_socket = self.nginx_dir / "status.sock"  # nginx's stub_status (METRICS_PORT)
        self.metrics_dir = self.dir / "metrics"         # METRICS_PORT's files (metrics.py)
        self.metrics_ready = self.metrics_dir / "ready"  # the metrics server listens
        self.draining = self.dir / "draining"           # a stop under way (flaskbox_draining)
        # The certificate and key nginx serves: checked copies, one folder
        # per version, and `current`, the link nginx reads at each handshake.
        self.tls_dir = self.dir / "tls"
        self.tls_current = self.tls_dir / "current"
        self.health_port = self.dir / "health-port"     # production's port, for healthcheck.sh's probe
        self.debug_loaded = self.dir / "debug.loaded"   # the dev server loaded the app once
        self.debug_app = self.dir / "debug.app"         # "ok" or the last load's error

    def generation(self, number: int) -> Generation:
        return Generation(self.uwsgi_dir / f"g{number}")


class Generation:
    """The files of one generation of the uWSGI pool, in a folder of its
    own (app.ini's %(flaskbox_generation)): its sockets, its stats, the
    marks its workers leave, what its app said of its static folder."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.stats_socket = self.dir / "stats.sock"
        self.ready = self.dir / "ready"            # a worker accepts (app.ini, hook-accepting1-once)
        self.accepting = self.dir / "accepting"    # each worker that accepts (forks.SpawnGuard)
        # What the loaded app said of itself (discover.Found.describe), from
        # which the arbiter renders nginx's static location (static.py).
        self.app = self.dir / "app.json"
        # Every thread's stack, when the app ran past IMPORT_TIMEOUT (importing.Deadline).
        self.import_stacks = self.dir / "import-stacks"
        # Every thread's stack while the import runs, rewritten every few
        # seconds (importing.Deadline): where a slow import waits, said as it waits.
        self.import_progress = self.dir / "import-progress"
        # The threads and connections the app's import left in the master
        # (pool/preload.py), which ends it: the arbiter loads the app in each
        # worker instead.
        self.in_each_worker = self.dir / "in-each-worker"
        # Made by the one process that says the app's start-up warnings, and
        # by the one that says why it did not load (with lazy-apps, the
        # first worker to get there: the others' lines would only repeat it).
        self.said = self.dir / "said"
        self.failed = self.dir / "failed"
        # How the workers' event streams are to end at a stop or a retirement
        # (arbiter/generation.py writes it, streams.py reads it): by when.
        self.streams_end = self.dir / "streams-end"

    def import_stacks_of(self, pid: int) -> Path:
        """A lazy-apps worker's import-stacks, its own: a worker forked
        again opened the shared one anew, emptying the stacks just dumped."""
        return self.dir / f"import-stacks-{pid}"

    def import_stacks_dumped(self) -> Path | None:
        """The stacks of an import past IMPORT_TIMEOUT (the master's, or a
        lazy-apps worker's), if one was."""
        for path in sorted(self.dir.glob("import-stacks*")):
            try:
                if path.stat().st_size:
                    return path
            except OSError:
                continue
        return None

    def gate(self, pid: int) -> Path:
        """A worker's ADAPTIVE_THREADS limit (admission.py writes it; an operator reads it)."""
        return self.dir / f"gate-{pid}"

    def say_gate(self, pid: int, limit: int) -> None:
        """gate-PID: the limit, whole or not at all; the first word of a
        worker sweeps the gates of workers gone."""
        path = self.gate(pid)
        new = path.with_name(f"{path.name}.new")
        try:
            if not path.exists():
                self.forget_gates()
            new.write_text(f"{limit}\n")
            new.replace(path)
        except OSError:
            pass  # what is said of the gate is not worth a request

    def forget_gates(self) -> None:
        """Removes the gates of workers that have ended: a worker killed or
        retired says nothing as it goes, and an operator reading gate-*
        would see it still (the first word of each new worker sweeps)."""
        for path in self.dir.glob("gate-*"):
            pid = path.name[5:].removesuffix(".new")
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                path.unlink(missing_ok=True)

    def socket(self, name: str) -> Path:
        return self.dir / name
