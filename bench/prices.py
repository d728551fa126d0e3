"""--prices: what each guarantee on the request path costs a request, in
instructions, whatever the machine's load (issue 42).

A timed figure (CPU µs a request) moves with everything else the machine
does; an instruction count does not. Each figure here is callgrind's count
of the instructions one process ran, for N2 requests less that for N1,
divided by N2 - N1: what one more request costs, without the start and the
stop. Two processes are measured, each alone, inside a flaskbox container
(an image with valgrind added):

- nginx: a copy of the container's rendered nginx.conf, one worker and no
  master, on a port of its own, in front of the container's uWSGI; hello
  world and the 100 KB static file, with each feature out in turn
  (variants.FEATURE_EDITS, mounted over the image's template), and with all
  of them out;
- a uWSGI worker: a copy of the container's uwsgi.ini, no master, one
  process, one thread, on a socket of its own, driven straight over the
  socket; hello world, with each piece of the WSGI wrapper out in turn
  (variants.WRAPPER_EDITS);
- the hop: the bare pass's nginx and uWSGI (contenders/bare), over HTTP/1.1
  (flaskbox's hop) and over the uwsgi protocol.

Instructions are not time: a system call, a cache miss or a lock costs
time callgrind does not count. docs/BENCHMARKS.md gives both. Written to
prices.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import compare
from harness import CONTENDERS_TAG, NAME, REPO, log
from servers import Contender
from variants import FEATURE_EDITS, WRAPPER_EDITS, taken_out, without_features, without_pieces

from helpers import docker

VALGRIND_TAG = f"flaskbox-{NAME}:valgrind"
N1, N2 = 100, 400  # requests: the difference is what is counted
NGINX_PORT = 23599
ROUTES = {"hello": "/", "static": "/static/blob.bin"}
UWSGI_SOCKET = "/tmp/prices/uwsgi.sock"
BARE_SOCKET = "/tmp/prices/bare.sock"

# Inside the container, in /app: run `$@` under callgrind, drive it, stop
# it, print its instruction total. $1 is how to stop it (a signal), $2 a
# command that drives N requests (N replaces {N}), then the program's own
# command line (the program itself: valgrind does not follow an exec).
UNDER_CALLGRIND = r'''
set -e
stop=$1 drive=$2; shift 2
cd /app
rm -f /tmp/prices/cg.out
# shellcheck disable=SC2086 # COLLECT: valgrind's options, one word each
valgrind --tool=callgrind --callgrind-out-file=/tmp/prices/cg.out ${COLLECT:-} "$@" \
    >/tmp/prices/run.log 2>&1 &
pid=$!
for _ in $(seq 600); do eval "${drive//\{N\}/1}" 2>/dev/null && break; sleep 0.2; done
eval "${drive//\{N\}/$N}"
kill "-$stop" "$pid"; wait "$pid" || true
grep '^totals:' /tmp/prices/cg.out | cut -d' ' -f2
'''

# Inside the container: N requests, each answered 200 or the driver fails.
# "client": as a browser asks nginx, on one keep-alive connection (no
# request id, no peer header: nginx makes those); "http": as nginx asks
# uWSGI over HTTP/1.1 (its peer header and request id, a connection each);
# "uwsgi": as nginx's uwsgi_pass asks, a connection each.
DRIVER = r'''
import http.client, socket, struct, sys, time
where, path, n, protocol = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if protocol == "client":
    conn = http.client.HTTPConnection("127.0.0.1", int(where), timeout=60)
    for _ in range(n):
        conn.request("GET", path, headers={"User-Agent": "prices", "Accept": "*/*"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            sys.exit(f"answered {answer.status}")
    sys.exit(0)
if protocol == "uwsgi":
    env = {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
           "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "http", "REMOTE_ADDR": "127.0.0.1",
           "REMOTE_PORT": "40000", "SERVER_PORT": "80", "SERVER_NAME": "localhost", "HTTP_HOST": "localhost"}
    body = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                    for k, v in env.items())
    message = struct.pack("<BHB", 0, len(body), 0) + body
for _ in range(n):
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(where)
    if protocol == "http":
        peer = f"127.0.0.1 40000 80 {time.time():.3f} 0 http"
        message = (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Flaskbox-Peer: {peer}\r\n"
                   "X-Request-ID: 0123456789abcdef0123456789abcdef\r\nConnection: close\r\n\r\n").encode()
    conn.sendall(message)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    if data[9:12] != b"200":
        sys.exit(f"answered {data[:40]!r}")
'''


def build_valgrind_image() -> None:
    """The contenders' image with valgrind added (as root, then back)."""
    log(f"building {VALGRIND_TAG} (adds valgrind)")
    dockerfile = (f"FROM {CONTENDERS_TAG}\nUSER 0\nRUN apt-get update && apt-get install -y "
                  "--no-install-recommends valgrind && rm -rf /var/lib/apt/lists/*\nUSER 10001:0\n")
    docker("build", "--network", "host", "-t", VALGRIND_TAG, "-", input=dockerfile, timeout=1200)


# What every measured process runs with. Python's hash seed, random in each
# process otherwise, decides where each str and bytes key lands in a dict or
# set, and so how many probes a lookup takes: with it random, a uWSGI
# worker's count for the same code spread by +-5k instructions a request
# between runs (nginx ignores it).
MEASURED_ENV = ("PYTHONHASHSEED=0",)


# What a uWSGI worker's count takes in: what runs inside uWSGI's handling of
# a request (the app, flaskbox's wrapper, the answer's writes) and its
# after-request hook (parking.py's), not what the process's other threads
# do by the clock (REQUEST_TIMEOUT's watchdog looking at its requests a few
# times a second). Under valgrind a request takes some fifty times as long,
# so that clock's work fell on each request fifty times over, and as the
# machine's speed varied: a worker's count for the same code wandered by
# 10-40k instructions a request from run to run.
PER_REQUEST = ("COLLECT=--collect-atstart=no --toggle-collect=uwsgi_request_wsgi "
               "--toggle-collect=uwsgi_after_request_wsgi",)


def counted(container, stop: str, drive: str, command: list[str], env: tuple[str, ...] = ()) -> int:
    """Instructions one more request costs `command` (see UNDER_CALLGRIND),
    run with MEASURED_ENV and `env` (NAME=value) added."""
    totals = []
    for n in (N1, N2):
        out = container.exec("env", f"N={n}", *MEASURED_ENV, *env, "bash", "-c", UNDER_CALLGRIND, "prices",
                             stop, drive, *command)
        if out.returncode != 0 or not out.stdout.strip().isdigit():
            container.fail(f"callgrind run failed: {out.stdout[-500:]} {out.stderr[-1500:]}")
        totals.append(int(out.stdout.strip()))
    return round((totals[1] - totals[0]) / (N2 - N1))


def drive(where: str, path: str, protocol: str) -> str:
    return f"python3 /tmp/prices/drive.py {where} {path} {{N}} {protocol}"


def prepare(container) -> None:
    container.exec("mkdir", "-p", "/tmp/prices")
    container.exec("bash", "-c", f"cat > /tmp/prices/drive.py <<'EOF'\n{DRIVER}\nEOF")


def nginx_prices(container) -> dict[str, int]:
    """nginx alone (one worker, no master), on NGINX_PORT, per route."""
    conf = ("sed -e 's/^worker_processes .*/worker_processes 1;/' -e 's|^pid .*|pid /tmp/prices/nginx.pid;|' "
            f"-e 's/listen [0-9]* default_server/listen {NGINX_PORT} default_server/' "
            "-e '1i master_process off;' /tmp/flaskbox/nginx/nginx.conf > /tmp/prices/nginx.conf")
    container.exec("bash", "-c", conf)
    return {route: counted(container, "QUIT", drive(str(NGINX_PORT), path, "client"),
                           ["nginx", "-e", "/tmp/prices/nginx.err", "-c", "/tmp/prices/nginx.conf"])
            for route, path in ROUTES.items()}


def worker_price(container) -> int:
    """One uWSGI worker (no master, 1 process), hello world: two threads, so
    that ADAPTIVE_THREADS' gate is on the path as with the default threads
    (its limit, its line; the requests come one at a time)."""
    container.exec("bash", "-c", "sed -e 's/^master = true/master = false/' /tmp/flaskbox/uwsgi.ini "
                                 "> /tmp/prices/uwsgi.ini && mkdir -p /tmp/prices/generation")
    command = ["uwsgi", "--set-placeholder", "flaskbox_generation=/tmp/prices/generation",
               "--ini", "/tmp/prices/uwsgi.ini", "--processes", "1", "--threads", "2"]
    return counted(container, "INT", drive("/tmp/prices/generation/uwsgi.sock", "/", "http"), command,
                   PER_REQUEST)


def started(label: str, mounts: dict[Path, str]) -> Contender:
    """A container of the valgrind image with `mounts` (host path: inside)."""
    contender = Contender("flaskbox", label, [], image=VALGRIND_TAG,
                          docker_args=tuple(arg for host, inside in mounts.items()
                                            for arg in ("-v", f"{host}:{inside}:ro")))
    contender.start()
    prepare(contender.container)
    return contender


# The static location's own features (nginx-static.conf), as FEATURE_EDITS:
# the text to take out, each found.
STATIC_EDITS = {
    "the symlink check (disable_symlinks)": [("    disable_symlinks on from=${STATIC_PATH};\n", "")],
    "the dotfile refusal (a nested regex location)": [
        ("    location ~ /\\.(?!well-known(?:/|$)) {\n        set $flaskbox_handler static;\n"
         "        error_page 404 = @flaskbox_not_found;\n        return 404;\n    }\n", "")],
    "the static files' limits (limit_conn zones, and a body's way to the app)": [
        ("    if ($flaskbox_body) {\n        return 418;\n    }\n", ""),
        ("    limit_conn flaskbox_static_clients ${CONNECTIONS_PER_CLIENT};\n", ""),
        ("    limit_conn flaskbox_static ${BODY_SLOTS};\n", "")],
    "Cache-Control (expires, and the fingerprinted names' regex location)": [
        ("    expires ${STATIC_EXPIRES};\n", ""),
        ('    location ~ "(?:\\.(?=[0-9]*[a-f])[0-9a-f]{8,}(?:\\.chunk|\\.entry|\\.bundle)?'
         '|/(?=[0-9]*[a-f])(?:[0-9a-f]{8,}\\.chunk|[0-9a-f]{20})|-(?=[A-Za-z0-9_-]{8}\\.[A-Za-z0-9]+$)'
         '(?:(?=[A-Z]*[2-7])(?=[2-7]*[A-Z])[A-Z2-7]{8}|(?=[0-9a-z_-]*[A-Z])(?=[0-9A-Z_-]*[a-z])'
         '(?![A-Za-z0-9_-]*(?:[a-z]{3}|[0-9]{3}))[A-Za-z0-9_-]{8}))\\.[A-Za-z0-9]+$" {\n'
         '        if ($flaskbox_body) {\n            return 418;\n        }\n'
         '        set $flaskbox_handler static;\n        expires max;\n    }\n', "")],
}


def without_static(names: list[str]) -> str:
    """nginx-static.conf with the named features taken out."""
    return taken_out((REPO / "nginx-static.conf").read_text(), STATIC_EDITS, names, "nginx-static.conf",
                     "STATIC_EDITS")


def nginx_cases() -> dict[str, dict[str, str]]:
    """flaskbox, then each nginx feature out, then all of them: label ->
    {file in the image: its text instead}."""
    template = (REPO / "nginx.conf").read_text()
    conf, static = "/etc/flaskbox/nginx.conf", "/etc/flaskbox/nginx-static.conf"
    cases = {"flaskbox": {}}
    cases.update({f"without {name}": {conf: without_features(template, [name])} for name in FEATURE_EDITS})
    cases.update({f"without {name}": {static: without_static([name])} for name in STATIC_EDITS})
    cases["without all of these"] = {conf: without_features(template, list(FEATURE_EDITS)),
                                     static: without_static(list(STATIC_EDITS))}
    return cases


def wrapper_cases() -> dict[str, dict[str, str]]:
    """flaskbox, then each piece of the WSGI wrapper out."""
    names = sorted({file for edits in WRAPPER_EDITS.values() for file, _, _ in edits})
    sources = {name: (REPO / "lib/flaskbox" / name).read_text() for name in names}
    cases = {"flaskbox": {}}
    for piece in WRAPPER_EDITS:
        changed = without_pieces(sources, [piece])
        cases[f"without {piece}"] = {f"/usr/local/lib/flaskbox/flaskbox/{name}": text
                                     for name, text in changed.items() if text != sources[name]}
    return cases


def each_case(cases: dict[str, dict[str, str]], out_dir: Path, measure,
              folders: dict[Path, str] | None = None) -> dict:
    """`measure(container)` in a fresh container for each case, with its
    files mounted over the image's (and `folders`, host: inside, for all)."""
    results = {}
    for label, files in cases.items():
        mounts = dict(folders or {})
        for number, (inside, text) in enumerate(files.items()):
            path = out_dir / f"prices-{number}-{Path(inside).name}"
            path.write_text(text)
            mounts[path] = inside
        contender = started(label, mounts)
        try:
            results[label] = measure(contender.container)
        finally:
            contender.stop()
            for path in mounts:
                if path.is_file() and path.parent == out_dir:
                    path.unlink()
        log(f"prices: {label}: {results[label]}")
    return results


def stop_bare_uwsgi(container) -> None:
    """The bare uWSGI nginx was in front of (no pkill in the image; the
    pattern's [.] keeps this shell from matching itself)."""
    container.exec("bash", "-c", "for d in /proc/[0-9]*; do tr '\\0' ' ' <$d/cmdline 2>/dev/null | "
                                 "grep -q 'bare/uwsgi[.]ini --socket\\|bare/uwsgi[.]ini --http-socket' && "
                                 "kill -INT ${d#/proc/}; done; true")


def hop_prices() -> dict:
    """The bare pass's nginx and uWSGI worker, over HTTP/1.1 and over the
    uwsgi protocol: what the hop's protocol costs each side."""
    contender = started("the bare pass's hop", {})
    container = contender.container
    out: dict = {}
    try:
        for protocol, socket_option, passing in (
                ("http", "--http-socket", "proxy_http_version 1.1; proxy_set_header Connection close; "
                                          f"proxy_set_header Host $http_host; proxy_pass http://unix:{BARE_SOCKET}:;"),
                ("uwsgi", "--socket", f"include /etc/nginx/uwsgi_params; uwsgi_pass unix:{BARE_SOCKET};")):
            # One process, no master: the bare ini without its master's lines
            # (uWSGI reads `--master false` as a flag and a config file).
            container.exec("bash", "-c", "mkdir -p /tmp/prices && sed -e '/^master *=/d' "
                           "-e '/^hook-master-start/d' /bench/contenders/bare/uwsgi.ini > "
                           "/tmp/prices/bare-worker.ini")
            uwsgi = ["uwsgi", "--ini", "/tmp/prices/bare-worker.ini", socket_option, BARE_SOCKET]
            worker = counted(container, "INT", drive(BARE_SOCKET, "/", protocol), uwsgi,
                             ("BARE_PROCESSES=1", "BARE_THREADS=1", *PER_REQUEST))
            # nginx in front of a plain bare uWSGI of the same protocol.
            backend = (f"rm -f {BARE_SOCKET}; cd /app && BARE_PROCESSES=1 BARE_THREADS=4 nohup uwsgi "
                       f"--ini /bench/contenders/bare/uwsgi.ini {socket_option} {BARE_SOCKET} "
                       ">/tmp/prices/bare.log 2>&1 &")
            container.exec("bash", "-c", backend)
            conf = (f"sed -e 's/${{PORT}}/{NGINX_PORT}/' -e 's/${{WORKERS}}/1/' -e 's|${{PASS}}|{passing}|' "
                    "-e 's|^pid .*|pid /tmp/prices/nginx.pid;|' -e '1i master_process off;' "
                    "/bench/contenders/bare/nginx.conf > /tmp/prices/bare-nginx.conf && mkdir -p /tmp/bare")
            container.exec("bash", "-c", conf)
            nginx = counted(container, "QUIT", drive(str(NGINX_PORT), "/", "client"),
                            ["nginx", "-c", "/tmp/prices/bare-nginx.conf"])
            stop_bare_uwsgi(container)
            out[protocol] = {"nginx": nginx, "uWSGI worker": worker}
            log(f"prices: the hop over {protocol}: {out[protocol]}")
    finally:
        contender.stop()
    return out


# Inside the container: the user-mode CPU seconds (utime) the processes
# whose command line starts with $1 have used so far.
USER_SECONDS = r'''
total=0
for d in /proc/[0-9]*; do
    command=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case "$command" in "$1"*) ;; *) continue ;; esac
    stat=$(cat "$d/stat" 2>/dev/null) || continue
    read -ra fields <<<"${stat##*) }"
    total=$((total + fields[11]))
done
echo "$total $(getconf CLK_TCK)"
'''
TIMED = 30000  # requests: enough clock ticks of user time for a 3 % reading


def ns_per_instruction(instructions: dict[str, int]) -> dict[str, float]:
    """What an instruction of each process takes here, in user-mode CPU
    time: flaskbox (no valgrind) answers TIMED hello requests on one
    keep-alive connection from inside its container, and the user time its
    nginx workers and its uWSGI workers spent is divided by TIMED times the
    instructions callgrind counted for one. Converts the price list to µs
    (roughly: what callgrind does not count, it does not convert)."""
    contender = Contender("flaskbox", "flaskbox, timed", [])
    contender.start()
    container = contender.container
    try:
        prepare(container)
        groups = {"nginx": "nginx: worker process", "uWSGI worker": "flaskbox uWSGI worker"}

        def user_seconds() -> dict[str, float]:
            out = {}
            for name, prefix in groups.items():
                ticks, hz = container.exec("bash", "-c", USER_SECONDS, "user", prefix).stdout.split()
                out[name] = int(ticks) / int(hz)
            return out
        before = user_seconds()
        container.exec("python3", "/tmp/prices/drive.py", str(container.port), "/", str(TIMED), "client")
        after = user_seconds()
    finally:
        contender.stop()
    return {name: round((after[name] - before[name]) / (TIMED * instructions[name]) * 1e9, 3)
            for name in groups}


def before_prices(ref: str, out_dir: Path) -> dict:
    """Version `ref` measured in the same run, on the same image: nginx for
    both routes, the worker with and without its wrapper."""
    folder, bare, nginx_files = compare.earlier(ref, Path(tempfile.mkdtemp(prefix="flaskbox-before-")))
    if not bare:
        raise SystemExit(f"bench: {ref}'s wsgi.py wraps the app in no way compare.py knows: "
                         "update EARLIER_WRAPPERS")
    lib = {folder: "/usr/local/lib/flaskbox/flaskbox"}
    try:
        nginx = each_case({f"{ref}": nginx_files}, out_dir, nginx_prices, lib)[ref]
        # The version's own templates too: the container renders them with
        # its Python at start, and the placeholders change between versions.
        cases = {f"{ref}": nginx_files, f"{ref} without the whole wrapper": {**bare, **nginx_files}}
        worker = each_case(cases, out_dir, worker_price, lib)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"nginx (instructions a request, per route)": nginx,
            "uWSGI worker (instructions a hello request)": worker}


def run(out_dir: Path, machine: dict, before: str | None = None) -> int:
    build_valgrind_image()
    started_at = time.monotonic()
    earlier_prices = before_prices(before, out_dir) if before else None
    nginx = each_case(nginx_cases(), out_dir, nginx_prices)
    worker = each_case(wrapper_cases(), out_dir, worker_price)
    rates = ns_per_instruction({"nginx": nginx["flaskbox"]["hello"], "uWSGI worker": worker["flaskbox"]})
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine,
               "method": f"callgrind instructions for {N2} requests less those for {N1}, over {N2 - N1}",
               "nginx (instructions a request, per route)": nginx,
               "uWSGI worker (instructions a hello request)": worker,
               "the hop (instructions a hello request)": hop_prices(),
               "before": {"version": before, **earlier_prices} if before else None,
               "user-mode ns per instruction, flaskbox's hello world": rates}
    results["duration_s"] = round(time.monotonic() - started_at)
    (out_dir / "prices.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if before:
        compare.chart(results, out_dir / "prices.png")
    log(f"prices: {out_dir / 'prices.json'}")
    return 0
