"""The settings table's first chapter: the app. Its mode and port, where
the image writes, which app to serve (and a uWSGI ini of its own), and the
bounds of a request, of the app's import and of a reload."""

from __future__ import annotations

from pathlib import Path

from ..layout import DEBUG, MODES, PRODUCTION, STOP_TIMEOUT_LEAST, STOP_TIMEOUT_SECONDS, Runtime, stop_drain
from ..userapp import discover
from .forms import absolute_path, app_module, line_size, one_of, readable_file, size_bytes, strip_slash, whole
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "APP_MODE",
        default=PRODUCTION,
        form="production or debug",
        parse=one_of(*MODES),
        doc="`production` or `debug`; `-d` on the command line wins.",
        enforced=(
            "entry-point.sh: flaskbox_parse_args (-d or APP_MODE: the mode, which picks the server)",
            "entry-point.sh: flaskbox_exec_command (WRITABLE_PATHS' targets for that mode)",
            "settings.resolve._resolve (the record's mode)",
            "sidecars.health.main (which server the health check probes: the record's `mode`)",
            "__main__.cmd_flask_env (no record yet: FLASK_DEBUG in debug mode)",
        ),
    ),
    Setting(
        "PORT",
        default=lambda context: "5000" if context.mode == DEBUG else "80",
        default_doc="`80` in production, `5000` in debug",
        form="a port number from 1 to 65535",
        parse=whole(1, 65535),
        doc="Port nginx (or the dev server) listens on.",
        enforced=(
            "nginx.conf: listen ${PORT}",
            "debug.server.main (the dev server's port)",
            "sidecars.health.main (the port the health check probes)",
            "start.render.render_production (RUNTIME_DIR/health-port, for healthcheck.sh)",
            "settings.resolve._check_together (below the unprivileged ports)",
            "settings.resolve._check_metrics_port",
            "settings.resolve._check_ports_free (something already listens on it)",
            "start.tls.check (TLS_PORT must differ)",
            "entry-point.sh: flaskbox_usage (the usage text)",
            "arbiter.arbiter.Arbiter._listening (the 'serving' line)",
            "debug.debug_warning.lines (who can reach the debugger)",
        ),
    ),
    Setting(
        "RUNTIME_DIR",
        default=Runtime.DEFAULT,
        form=f"an absolute directory such as {Runtime.DEFAULT}",
        parse=absolute_path,
        doc="Where the image writes its runtime files; must be writable.",
        normalize=strip_slash,
        enforced=(
            "record.runtime (where the record is, from the environment)",
            "__main__.cmd_prepare (the record written there)",
            "__main__.SHELL_VALUES (the entry-point's own: INSTALL_ON_START's packages)",
            "arbiter.arbiter.Arbiter (layout.Runtime: its marks, nginx's pid file, each generation's folder)",
            "start.render.render_production (every rendered file)",
            "start.body.files (the body limit's files, at start and for each generation)",
            "start.render.upstream_servers (uWSGI's sockets, in the current generation)",
            "start.render.metrics_main",
            "start.render.metrics_http",
            "start.render.probe_logs (the metrics log's file)",
            "pool.wsgi.from_record (spool.Spool: the disk responses are spooled to)",
            "nginx.conf: ${RUNTIME_DIR} (nginx's pid, temporary files and includes)",
            "app.ini: ${RUNTIME_DIR}/uwsgi-sockets.ini",
            "entry-point.sh: flaskbox_prepare",
            "healthcheck.sh: answers_200 (the port the quick probe reads)",
            "lib/install-on-start.sh: _layered_venv (INSTALL_ON_START's packages)",
        ),
    ),
    Setting(
        "UWSGI_INI",
        default=lambda context: str(context.host.app_dir / "uwsgi.ini")
        if (context.host.app_dir / "uwsgi.ini").is_file() else "",
        default_doc="`/app/uwsgi.ini` if there is one (computed)",
        form="the path of a readable uWSGI ini file",
        parse=readable_file,
        doc="An extra uWSGI ini, merged after the image's `app.ini` (its values win); its `module` and "
            "`callable` name the app, as in tiangolo's image.",
        enforced=(
            "settings.resolve.user_uwsgi_options (read once: what uwsgi.ini keeps of it)",
            "start.render.uwsgi_ini (merged after app.ini, from the record)",
            "__main__.app_before_start (the app `flask` commands find before a start)",
            "settings.names.ini_path (its processes, threads and harakiri taken as settings)",
        ),
    ),
    Setting(
        "APP_MODULE",
        default=lambda context: discover.find_module(context.host.app_dir,
                                                     Path(context.values["UWSGI_INI"] or "/nonexistent"))[0],
        default_doc="`wsgi`, `app` or `main`, whichever file `/app` has (computed)",
        form="module, module:name or module:factory(args), e.g. app, flaskr:create_app() or "
             "mypkg.wsgi:application",
        parse=app_module,
        normalize=discover.from_file_name,
        doc=("Your WSGI app, relative to `/app`, in Flask's forms: `module` (Flask finds its `app` or "
             "`create_app`), `module:name`, `module:factory(args)`. Also read from `FLASK_APP` "
             "([your-app.md](your-app.md#how-the-app-is-found))."),
        enforced=(
            "pool.wsgi.load_app",
            "debug.server.main (debug.DevApp)",
            "__main__.cmd_flask_env (FLASK_APP for `docker exec ... flask`)",
            "__main__.app_before_start",
            "settings.resolve._check_together (the image's sample app beside your code)",
            "__main__.SHELL_VALUES (the entry-point's own: FLASK_APP for the hooks)",
            "lib/hooks.sh: _run_hook (FLASK_APP for the hooks)",
            "arbiter.generation.Generation.why (why a start or a reload failed)",
            "arbiter.generation.Generation._load_failed (where its import waits)",
            "arbiter.reload.Reload._failed (code that no longer imports)",
            "arbiter.arbiter.Arbiter._listening (the 'serving' line)",
        ),
    ),
    Setting(
        "MAX_BODY_SIZE",
        default="10m",
        form="a size such as 512k, 10m or 1g (0 disables the limit)",
        parse=size_bytes,
        doc=("Largest request body, or file in a form (which may add up to 64 KiB of its own fields around "
             "it) (nginx size: `512k`, `10m`, `1g`; `0` = no limit). Larger gets 413. Not set, an app's "
             "own larger Flask `MAX_CONTENT_LENGTH` is nginx's limit instead "
             "([your-app.md](your-app.md#uploads-and-their-limits))."),
        enforced=(
            "settings.resolve.derived (MAX_BODY_SIZE_SET: whether the app's limit may replace it)",
            "start.body.SETTING (what a 413 of its limit names)",
            "start.body.limit (client_max_body_size; the app's MAX_CONTENT_LENGTH when not set)",
            "nginx.conf: body-limit.conf (client_max_body_size, from start.body)",
            "nginx.conf: /-/body-too-large (its 413 logged with limit=MAX_BODY_SIZE)",
            "start.body.said (the start's line names it, and where it came from)",
            "start.body.upload_conf (limit_conn flaskbox_uploads: UPLOAD_SPACE / the limit)",
            "settings.resolve._check_together (UPLOAD_SPACE holds one)",
            "start.body.mistakes (Flask's MAX_CONTENT_LENGTH above a MAX_BODY_SIZE set)",
        ),
    ),
    Setting(
        "MAX_LINE_SIZE",
        # 16k: Superset's chart links carry their state in the query (16 KB),
        # as search pages and OAuth redirects do; AWS's load balancers and
        # Cloudflare take 16 KB URLs. Headers as a whole keep 33 KB
        # (configuration.md says why).
        default="16k",
        form="a size from 1k to 24k, such as 16k or 20000",
        parse=line_size,
        doc=("Longest request line (the URL with its query) and longest header line (a cookie, a token) "
             "nginx admits; longer gets 414 or 400, logged with `limit=MAX_LINE_SIZE`. The app's answer "
             "may echo twice that in its headers (a redirect to `/login/?next=<the URL>`) "
             "([configuration.md](configuration.md#long-urls-and-large-headers))."),
        enforced=(
            "settings.resolve.derived (HEADER_LINE, HEADER_BUFFERS, UWSGI_MAX_VARS, PROXY_HEADER_BUFFER)",
            "nginx.conf: large_client_header_buffers",
            "nginx.conf: proxy_buffer_size",
            "nginx.conf: $flaskbox_limit_note (the log line of a 414 or 400 for it)",
        ),
    ),
    Setting(
        "REQUEST_TIMEOUT",
        default="30",
        form="a whole number of seconds from 1 to 86400",
        parse=whole(1, 86400),
        doc=("Seconds a client may wait for its answer to start, time in the queue included, and then for "
             "each next part of a streamed answer: past it, a request still queued gets 503, a handler "
             "still running 504 (its worker is replaced once its other requests end), a stream gone silent "
             "is cut (visibly). An answer that keeps sending is never cut by it."),
        enforced=(
            "request.serve.Serve.waited_long (sync: 503 for a request queued past it)",
            "request.guards.Watchdog (sync: 504, then the worker is replaced)",
            "request.serve.GeventServe.bounded (gevent: the handler cancelled, serve.Serve.run answers 504)",
            "request.guards.LoopWatch (gevent: a loop blocked past it)",
            "pool.wsgi.from_record",
            "settings.resolve._upstream_timeout",
            "nginx.conf: proxy_read_timeout (UPSTREAM_TIMEOUT)",
            "settings.resolve.derived (WORKER_RELOAD_MERCY)",
            "app.ini: worker-reload-mercy",
        ),
    ),
    Setting(
        "IMPORT_TIMEOUT",
        # Two minutes: an app that loads a large model or warms a cache from
        # local disk imports well within it, and a hang is named while
        # someone still watches the start.
        default="120",
        form="a whole number of seconds from 0 (no limit) to 86400",
        parse=whole(0, 86400),
        doc=("Seconds the app may take to import (its module and factory) at a start or a reload. Past "
             "it, every thread's stack is logged with the line where the import waits, and the start ends "
             "(exit 124; a reload keeps the running code); in debug mode the stacks are shown and the wait "
             "goes on. `0`: no limit ([your-app.md](your-app.md#an-import-that-never-ends))."),
        enforced=(
            "pool.wsgi.load_app (importing.Deadline: the stacks logged, the start ended)",
            "debug.server.main (debug.DevApp: importing.Reminder, and the wait goes on)",
            "arbiter.generation.Generation.start (a master its own deadline did not end, killed)",
            "arbiter.generation.Generation._load_failed (exit 124, where it waited)",
            "arbiter.generation.Generation.why (exit 124)",
        ),
    ),
    Setting(
        "RELOAD_GRACE",
        # Five minutes: a 300 MB export or download to a client at 1 MB/s
        # finishes; the old pool's memory is given back soon after.
        default="300",
        form="a whole number of seconds from 0 to 86400",
        parse=whole(0, 86400),
        doc=("Seconds the requests, downloads and streams in flight at a reload (SIGHUP) have to finish on "
             "the old code while new requests go to the new; past it they are cut, visibly. An event stream "
             "still open a second before it ends is ended cleanly, and counted "
             "([production.md](production.md#reloading-in-place))."),
        enforced=(
            "arbiter.generation.Generation.retire (the old code's deadline)",
            "arbiter.generation.Generation._read (past it, what is left is cut)",
            "arbiter.generation.Generation._stop_retired (what it leaves is the old code's exit budget)",
            "arbiter.reload.Reload (said in the log)",
            "settings.resolve.derived (WORKER_RELOAD_MERCY)",
            "app.ini: worker-reload-mercy",
        ),
    ),
    Setting(
        "STOP_TIMEOUT",
        # Docker's own grace period (docker stop's -t, --stop-timeout), so
        # that a stop ends before docker's SIGKILL unless told otherwise.
        default=str(STOP_TIMEOUT_SECONDS),
        form=f"a whole number of seconds from {STOP_TIMEOUT_LEAST} to 86400",
        parse=whole(STOP_TIMEOUT_LEAST, 86400),
        doc=("Seconds a stop may take: the same number as the orchestrator's grace period before its SIGKILL "
             "(`docker stop -t` or `--stop-timeout`, Compose's and Swarm's `stop_grace_period`, Kubernetes' "
             "`terminationGracePeriodSeconds` less a preStop hook's sleep). nginx drains the requests in "
             f"flight for all of it but {STOP_TIMEOUT_SECONDS - stop_drain(STOP_TIMEOUT_SECONDS)} s, which "
             "uWSGI and the exit take, and the container ends on its own before the SIGKILL "
             "([production.md](production.md#stopping))."),
        enforced=(
            "settings.resolve.derived (STOP_DRAIN_SECONDS)",
            "nginx.conf: worker_shutdown_timeout (STOP_DRAIN_SECONDS)",
            "arbiter.stop.Stop (the stop's deadlines; what the drain leaves is the workers' exit budget)",
            "pool.master.prepare_the_master",
            "pool.forks.SpawnGuard (as its `stop_timeout`: a crash loop's serving workers end as at a stop)",
            "arbiter.generation.Generation._stop_retired (the old code's exit gets no more than a stop's)",
        ),
    ),
)
