"""flaskbox against variants of itself: one setting changed at a time
(--levers), one nginx feature taken out at a time (--features), or one
piece of the WSGI wrapper (--wrapper): what each costs, measured."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from harness import CONTAINERS, CONTENDERS_TAG, PRODUCT_TAG, REPO, ROUTES, log
from image import build_images, default_pool
from report import machine
from runs import race, summarise
from servers import Contender, bare_pass


def levers(docker_args: tuple[str, ...]) -> list[Contender]:
    """flaskbox with one setting changed at a time, against its defaults:
    what each lever is worth, measured rather than assumed (--levers)."""
    variants = {
        "defaults": {},
        "4 processes x 1 thread": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "1"},
        "4 processes x 4 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "4"},
        "4 processes x 8 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "8"},
        "4 processes x 32 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "32"},
        "2 processes x 16 threads": {"UWSGI_PROCESSES": "2", "UWSGI_THREADS": "16"},
        "8 processes x 8 threads": {"UWSGI_PROCESSES": "8", "UWSGI_THREADS": "8"},
        "thunder lock": {"UWSGI_THUNDER_LOCK": "true"},
        "no recycling": {"UWSGI_MAX_REQUESTS": "0"},
        "1 nginx worker": {"NGINX_WORKER_PROCESSES": "1"},
        "JSON access log": {"LOG_FORMAT": "json"},
        # nginx's listen socket per worker (reuseport), as before SHARE_PORT.
        "SHARE_PORT=1 (reuseport)": {"SHARE_PORT": "1"},
    }
    entrants = [Contender("flaskbox" if name == "defaults" else f"flaskbox, {name}", f"flaskbox, {name}", [],
                          env=env, docker_args=docker_args) for name, env in variants.items()]
    # The image's health check, every 10 s beside the app: a suspect of the
    # tail at low load (issue 42).
    entrants.append(Contender("flaskbox, with its health check", "flaskbox, with its health check", [],
                              docker_args=docker_args, health_check=True))
    return entrants


def pools(docker_args: tuple[str, ...], mounts: list[str] = ()) -> list[Contender]:
    """flaskbox's default against other shapes of the pool with as many
    threads in all (64 on 2 CPUs: 50 open streams from one address fit in
    CLIENT_STREAM_SHARE's 80 % of them), and fewer (--pools): what the
    threads cost, measured rather than assumed."""
    variants = {
        "defaults": {},
        "8 processes x 8 threads": {"UWSGI_PROCESSES": "8", "UWSGI_THREADS": "8"},
        "2 processes x 32 threads": {"UWSGI_PROCESSES": "2", "UWSGI_THREADS": "32"},
        "4 processes x 8 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "8"},
        "4 processes x 4 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "4"},
        "4 processes x 1 thread": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "1"},
    }
    entrants = [Contender("flaskbox" if name == "defaults" else f"flaskbox, {name}", f"flaskbox, {name}", [],
                          env=env, docker_args=docker_args) for name, env in variants.items()]
    # --mount LABEL=HOST:CONTAINER[,NAME=VALUE...]: the defaults with other
    # code of flaskbox's own mounted over the image's (an earlier wrapper,
    # say), or a module of the test's own that UWSGI_IMPORT imports, with
    # those variables set.
    for mount in mounts:
        label, _, rest = mount.partition("=")
        volume, *variables = rest.split(",")
        env = dict(variable.split("=", 1) for variable in variables)
        entrants.append(Contender(f"flaskbox, {label}", f"flaskbox, {label} ({rest})", [], env=env,
                                  docker_args=(*docker_args, "-v", f"{volume}:ro")))
    return entrants


# What each of nginx.conf's features costs, measured alone (--features): the
# text to change in nginx.conf to take that feature out, and what replaces it.
# Every text must be found, so an edit of nginx.conf that moves one fails here
# loudly instead of measuring nothing.
FEATURE_EDITS = {
    "access log": [
        ("access_log ${STDOUT_LOG};", "access_log off;")],
    "health requests left out of the log": [
        ("include ${RUNTIME_DIR}/nginx/probe-logs.conf;", "")],
    "request id": [
        ("add_header X-Request-ID $flaskbox_request_id always;", ""),
        ("proxy_set_header X-Request-ID $flaskbox_request_id;", ""),
        (" id=$flaskbox_request_id", "")],
    "request id map (the incoming id's check)": [
        ('default $request_id;\n        "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id;',
         "default $request_id;")],
    "hardening and Retry-After headers": [
        ("add_header X-Content-Type-Options $flaskbox_nosniff always;", ""),
        ("add_header X-Frame-Options $flaskbox_frame_options always;", ""),
        ("add_header Referrer-Policy $flaskbox_referrer_policy always;", ""),
        ("add_header Retry-After $flaskbox_retry_after always;", "")],
    "host maps and ALLOWED_HOSTS": [
        ("if (${HOST_REFUSAL}) {\n            return 400;\n        }", ""),
        ("proxy_set_header Host $flaskbox_host;", "proxy_set_header Host $http_host;"),
        ("$remote_port $flaskbox_server_port", "$remote_port $server_port")],
    # The others (Proto, Host, Port, Prefix, Forwarded) are chosen in the
    # wrapper (flaskbox/request/forwarded.py), which nginx.conf cannot take out.
    "forwarded headers from trusted proxies": [
        ("proxy_set_header X-Forwarded-For ${FORWARDED_FOR};", "")],
    "per-client and upload limits (the limit_conn zones, and the kind that picks them)": [
        ("if ($flaskbox_kind) {\n                return 418;\n            }", ""),
        ("limit_conn flaskbox_clients ${CONNECTIONS_PER_CLIENT};", ""),
        ("limit_conn flaskbox_body_clients ${CONNECTIONS_PER_CLIENT};", ""),
        ("limit_conn flaskbox_bodies ${BODY_SLOTS};", ""),
        ("include ${RUNTIME_DIR}/nginx/upload-limits.conf;", "")],
    "trace id in the log": [
        (" '\n                    'trace=$flaskbox_trace_text", " '\n                    '")],
    "cut detection in the log ($flaskbox_done and the maps it asks)": [
        (" done=$flaskbox_done$flaskbox_limit_logged_note'", "'")],
    "proxy headers beyond the peer (X-Real-IP, Cookie, X-Forwarded-Ssl, Upgrade)": [
        ("proxy_set_header X-Real-IP $remote_addr;", ""),
        ("proxy_set_header Cookie $http_cookie;", ""),
        ('proxy_set_header X-Forwarded-Ssl "";', ""),
        ("proxy_set_header Upgrade $flaskbox_upgrade;", ""),
        ("proxy_set_header Connection $flaskbox_connection;", "proxy_set_header Connection close;")],
    "static files' Vary map": [
        ("add_header Vary $flaskbox_static_vary;", "")],
    "regular expressions compiled (pcre_jit)": [
        ("pcre_jit on;", "")],
}


# What each piece of the WSGI wrapper costs a request (--wrapper, and
# --prices): the text to change in flaskbox's Python to take that piece out
# (file, old, new). As FEATURE_EDITS, every text must be found. The wrapper
# is one layer (serve.Serve, one request.Request per request): each piece is
# a step of its path.
WRAPPER_EDITS = {
    "the whole wrapper (uWSGI calls the app)": [
        ("pool/wsgi.py", "    gated = admission.gated(settings) and threads_each > 1\n    if not gated:\n"
         "        return Serve(found.app, timeout, gate=unlimited.Timed(times), **common)\n",
         "    return found.app\n")],
    "the peer from X-Flaskbox-Peer (Request.__init__)": [
        ("request/request.py", '''        fields = environ.pop("HTTP_X_FLASKBOX_PEER", "").split(" ")
        try:  # (nothing is stored unless all six are there)
            (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["SERVER_PORT"], sent, trusted,
             scheme) = fields
            self.trusted, self.tls = trusted == "1", scheme == "https"
        except ValueError:
            sent = self._odd_peer(fields)
        try:
            waited = time() - float(sent)
        except (TypeError, ValueError):
            waited = 0.0
        self.waited = waited if waited > 0.0 else 0.0
''', "        self.trusted = self.tls = False\n        self.waited = 0.0\n")],
    "forwarded headers (the untrusted check, forwarded.apply)": [
        ("request/serve.py", "        if request.trusted or not UNTRUSTED.isdisjoint(environ):",
         "        if False:")],
    "files handed back untouched (wsgi.file_wrapper noted)": [
        ("request/request.py",
         "        if wrapper is not None:  # one that notes the files it gives (Serve.noting)\n",
         "        if False:\n")],
    "Vary (COMPRESS_APP_RESPONSES)": [
        ("request/serve.py", "        self.compressed = compressed", "        self.compressed = False")],
    # Its registry and its claim on the usual answer's path (the request's
    # clock stays on, so that the answer takes the same way out).
    "REQUEST_TIMEOUT's watchdog (its clock and claim)": [
        ("request/request.py", "        watchdog.running[get_ident()] = self\n", ""),
        ("request/request.py", """        CLAIMS.acquire()
        claimed = self.claimed_by
        if claimed is None:
            self.claimed_by = claimed = "app"
""", '        claimed = "app"\n'),
        ("request/request.py", """        serve.watchdog.running.pop(get_ident(), None)
        CLAIMS.release()
""", "")],
    "ADAPTIVE_THREADS' gate (its limit and line)": [
        ("pool/wsgi.py", "    gated = admission.gated(settings) and threads_each > 1", "    gated = False")],
}


def without_pieces(sources: dict[str, str], names: list[str]) -> dict[str, str]:
    """flaskbox's Python files (name -> text) with the named pieces out."""
    sources = dict(sources)
    for name in names:
        for file, old, new in WRAPPER_EDITS[name]:
            if old not in sources[file]:
                raise SystemExit(f"bench: lib/flaskbox/{file} no longer has {old!r} ({name}): "
                                 "update WRAPPER_EDITS")
            sources[file] = sources[file].replace(old, new)
    return sources


def wrapper(docker_args: tuple[str, ...], workdir: Path) -> list[Contender]:
    """flaskbox with one piece of its WSGI wrapper taken out at a time: the
    changed files mounted over the image's."""
    files = sorted({file for edits in WRAPPER_EDITS.values() for file, _, _ in edits})
    sources = {file: (REPO / "lib" / "flaskbox" / file).read_text() for file in files}
    entrants = [Contender("flaskbox", "flaskbox", [], docker_args=docker_args)]
    for number, name in enumerate(WRAPPER_EDITS):
        changed = without_pieces(sources, [name])
        mounts: list[str] = []
        for file in files:
            if changed[file] == sources[file]:
                continue
            path = workdir / f"{number}-{file.replace('/', '-')}"
            path.write_text(changed[file])
            path.chmod(0o644)
            mounts += ["-v", f"{path}:/usr/local/lib/flaskbox/flaskbox/{file}:ro"]
        label = f"flaskbox, no {name}"
        entrants.append(Contender(label, label, [], docker_args=(*docker_args, *mounts)))
    return entrants


def taken_out(text: str, edits: dict[str, list[tuple[str, str]]], names: list[str], source: str,
              table: str) -> str:
    """`text` (the file `source`) with the named entries of `edits` (the
    table `table`) applied; one that no longer matches stops the run."""
    for name in names:
        for old, new in edits[name]:
            if old not in text:
                raise SystemExit(f"bench: {source} no longer has {old!r} ({name}): update {table}")
            text = text.replace(old, new)
    return text


def without_features(template: str, names: list[str]) -> str:
    """nginx.conf with the named features taken out."""
    return taken_out(template, FEATURE_EDITS, names, "nginx.conf", "FEATURE_EDITS")


def features(docker_args: tuple[str, ...], workdir: Path) -> list[Contender]:
    """flaskbox with one nginx feature taken out at a time, and with all of
    them out: each one's nginx.conf is mounted over the image's template."""
    template = (REPO / "nginx.conf").read_text()
    variants = {"flaskbox": [], **{f"flaskbox, no {name}": [name] for name in FEATURE_EDITS},
                "flaskbox, none of these": list(FEATURE_EDITS)}
    entrants = []
    for number, (label, names) in enumerate(variants.items()):
        conf = workdir / f"nginx-{number}.conf"
        conf.write_text(without_features(template, names))
        conf.chmod(0o644)
        mount = ("-v", f"{conf}:/etc/flaskbox/nginx.conf:ro") if names else ()
        entrants.append(Contender(label, label, [], docker_args=(*docker_args, *mount)))
    # The floor: no feature, no wrapper, the same pool; and the same over
    # HTTP, as flaskbox's hop speaks, which is what the uwsgi protocol saves.
    processes, threads = default_pool()
    for protocol in ("uwsgi", "http"):
        floor = bare_pass(processes, threads, protocol)
        floor.docker_args = docker_args
        entrants.append(floor)
    return entrants


def run_variants(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--levers, --pools or --features: flaskbox against variants of itself,
    written to levers.json, pools.json or features.json (with --cpus N:
    levers-N-cpus.json, ...; with --rate R: ...-at-R.json, each variant at a
    fixed open-loop rate instead of wrk's saturation)."""
    import latency
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    docker_args = ("--cpus", str(args.cpus)) if args.cpus else ()
    kind = "levers" if args.levers else "pools" if args.pools else "wrapper" if args.wrapper else "features"
    routes = {"hello": ROUTES["hello"], "realistic": ROUTES["realistic"], "wait 5 ms": "/wait"}
    if args.rate:
        # nginx's features cost the same on any route the app answers.
        routes = {"hello": ROUTES["hello"]}
        if not (args.features or args.wrapper):
            routes["wait 5 ms"] = "/wait"
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-bench-"))
    started = latency.loadavg()
    try:
        entrants = (levers(docker_args) if args.levers else pools(docker_args, args.mount) if args.pools
                    else wrapper(docker_args, workdir) if args.wrapper else features(docker_args, workdir))
        if args.only:
            entrants = [c for c in entrants if c.name == "flaskbox" or c.name in args.only]
        if args.rate:
            given = [float(rate) for rate in args.rate.split(",")]
            rates = {route: given[min(number, len(given) - 1)] for number, route in enumerate(routes)}
            summary = latency.fixed_race(entrants, routes, rounds, rates, seconds)
            runs = None
        else:
            summary = summarise(runs := race(entrants, routes, rounds, seconds))
    finally:
        CONTAINERS.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "cpus": args.cpus,
               "rate": args.rate, "loadavg": [started, latency.loadavg()], "runs": runs, "summary": summary}
    name = f"{kind}-{args.cpus:g}-cpus" if args.cpus else kind
    name = f"{name}-at-{args.rate.replace(',', '-')}.json" if args.rate else f"{name}.json"
    (args.out / name).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    for contender, routes_of in summary.items():
        for route, medians in routes_of.items():
            if args.rate:
                log(f"{contender:48} {route:9} p99 {medians['p99_ms']} ms, "
                    f"CPU µs/request {medians['cpu_us_per_request']}")
                continue
            ratio = medians["rps_ratio_to_flaskbox"]
            log(f"{contender:32} {route:9} {medians['rps']:8.0f} req/s ({ratio:.2f}x) "
                f"p99 {medians['p99_ms']:6.2f} ms  CPU µs/request {medians['cpu_us_per_request']}")
    return 0
