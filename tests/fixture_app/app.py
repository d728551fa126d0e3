"""Test app, deliberately unlike the sample: no static route of its own, so a
static file that answers 200 can only have come from nginx."""

import gc
import hashlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from flask import Blueprint, Flask, Response, jsonify, request, send_file, stream_with_context, url_for

app = Flask(__name__, static_folder=None)

# What apps use os.register_at_fork for (reseeding, resetting a connection
# pool): the hook records the process it ran in.
AFTER_FORK: dict[str, int] = {}


def after_fork_in_child():
    AFTER_FORK.update(pid=os.getpid(), count=AFTER_FORK.get("count", 0) + 1)


os.register_at_fork(after_in_child=after_fork_in_child)


@app.get("/")
def index():
    return "fixture app\n"


@app.get("/boom")
def boom():
    # The secret reaches the log in the traceback, never the client.
    raise RuntimeError(f"secret {os.environ.get('SECRET_TOKEN', 'unset')}")


@app.get("/close-raises")
def close_raises():
    # A call_on_close callback that fails, as one releasing a connection might.
    response = app.response_class("made")
    response.call_on_close(lambda: {}["gone"])
    return response


@app.get("/whoami")
def whoami():
    # What the app sees of the client and of the request id.
    return jsonify(remote_addr=request.remote_addr, request_id=request.headers.get("X-Request-ID"))


@app.get("/env/<name>")
def env(name):
    # Lets tests see settings exported by hooks or uWSGI ini files.
    return jsonify(value=os.environ.get(name))


@app.get("/text")
def text():
    # A compressible body well over gzip_min_length.
    return "flaskbox " * 2000, 200, {"Content-Type": "text/plain"}


@app.get("/sleep/<int:seconds>")
def sleep(seconds):
    # A slow handler, for stops with requests in flight. The log line tells a
    # test that the request has reached a worker.
    print(f"sleep start {seconds}", file=sys.stderr, flush=True)
    time.sleep(seconds)
    return f"slept {seconds}\n"


@app.get("/shout/<int:lines>")
def shout(lines):
    # An app that logs a lot to stderr, as fast as it can.
    for number in range(lines):
        print(f"shout {number} of {lines}", file=sys.stderr)
    sys.stderr.flush()
    return f"shouted {lines}\n"


@app.post("/upload")
def upload():
    # How much of the body arrived, for the body-size limit.
    return jsonify(received=len(request.get_data()))


@app.get("/headers")
def headers():
    # Length of each header the app received, for the header-size limits.
    return jsonify({name.lower(): len(value) for name, value in request.headers.items()})


@app.get("/cookies")
def cookies():
    # Length of each cookie the app parsed, for the header-size limits.
    return jsonify({name: len(value) for name, value in request.cookies.items()})


@app.get("/framed")
def framed():
    # An app that sets its own hardening headers: nginx must not add a second.
    return "framed\n", 200, {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


@app.route("/echo", methods=["GET", "POST", "PUT"])
def echo():
    # Everything the app sees of a request: body, form, files, host, scheme,
    # client, and the forwarded headers that reached it.
    body = request.get_data(cache=True)
    return jsonify(
        length=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        form={key: len(value) for key, value in request.form.items()},
        files={key: hashlib.sha256(f.read()).hexdigest() for key, f in request.files.items()},
        host=request.host,
        scheme=request.scheme,
        secure=request.is_secure,
        external_url=url_for("echo", _external=True),
        remote_addr=request.remote_addr,
        server_port=request.environ.get("SERVER_PORT"),
        headers={name: value for name, value in request.headers.items()
                 if name.lower().startswith(("x-forwarded", "forwarded", "x-real-ip", "x-flaskbox",
                                                 "traceparent", "tracestate"))},
    )


@app.get("/stream/<int:count>")
def stream(count):
    # A streamed response: one line every `every` seconds; `fail=1` raises
    # after the last line, as a generator that hits an error mid-download.
    # `sized=1` announces the Content-Length of all the lines (which then
    # carry no time), and `fail=1` raises before the last one.
    every = float(request.args.get("every", "0.2"))
    fail = request.args.get("fail") == "1"
    sized = request.args.get("sized") == "1"
    # `pad=N`: each line N bytes longer, for a stream that fills buffers fast.
    pad = " " * int(request.args.get("pad", "0"))

    def line(i: int) -> str:
        return f"line {i}\n" if sized else f"line {i} {time.time():.3f}{pad}\n"

    def lines():
        for i in range(count):
            if fail and sized and i == count - 1:
                raise RuntimeError("the download failed before its last line")
            yield line(i)
            time.sleep(every)
        if fail:
            raise RuntimeError("the stream failed half-way")

    headers = {"Content-Length": str(sum(len(line(i)) for i in range(count)))} if sized else {}
    return Response(stream_with_context(lines()), mimetype="text/plain", headers=headers)


@app.get("/forked")
def forked():
    # Which process serves, whether its at-fork hook ran in it, and a random
    # number (the same in every worker if no hook reseeded after the fork);
    # how many of its objects the garbage collector leaves alone (frozen)
    # before and after the app forks processes of its own (?forks=N: N
    # children that exit at once, as an app's os.fork does).
    time.sleep(float(request.args.get("wait", "0")))
    frozen = gc.get_freeze_count()
    for _ in range(int(request.args.get("forks", "0"))):
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
    return jsonify(pid=os.getpid(), hooked=AFTER_FORK.get("pid"), hooks=AFTER_FORK.get("count"),
                   random=random.random(), frozen=frozen, frozen_after=gc.get_freeze_count())


def signals_here() -> dict:
    """This process's signal mask, as numbers, and whether SIGTERM would
    end it (the default action)."""
    return {"blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, ())),
            "term_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}


def in_a_child(queue) -> None:
    queue.put(signals_here())


@app.get("/children")
def children():
    # What the processes a request starts begin with: a multiprocessing
    # child's mask and SIGTERM handler, and whether terminate() ends one
    # (Pool.terminate() relies on it), and the same for a program run by
    # subprocess; with the mask of the thread serving, which they inherit.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    probe = context.Process(target=in_a_child, args=(queue,))
    probe.start()
    forked = queue.get(timeout=10)
    probe.join(10)
    sleeper = context.Process(target=time.sleep, args=(60,))
    sleeper.start()
    sleeper.terminate()
    sleeper.join(5)
    program = subprocess.run(["python3", "-c", "import signal; print(sorted(int(s) for s in "
                              "signal.pthread_sigmask(signal.SIG_BLOCK, ())))"],
                             capture_output=True, text=True, timeout=10)
    sleep = subprocess.Popen(["sleep", "60"])
    sleep.terminate()
    try:
        sleep_code = sleep.wait(5)
    except subprocess.TimeoutExpired:
        sleep.kill()
        sleep_code = "still running"
    return jsonify(thread=sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, ())),
                   forked=forked, forked_terminated=sleeper.exitcode,
                   program_blocked=program.stdout.strip(), program_terminated=sleep_code)


@app.get("/hang")
def hang():
    # A handler that never returns on its own. The log line tells a test
    # that it has reached a worker.
    print("hang start", file=sys.stderr, flush=True)
    time.sleep(100000)
    return "never\n"


@app.get("/big/<int:megabytes>")
def big(megabytes):
    # A large response (Content-Length known), made 1 MB at a time, for
    # clients that never read it; `every` seconds apart (a report made as it
    # is read from a database).
    chunk = b"x" * (1 << 20)
    every = float(request.args.get("every", "0"))

    def chunks():
        for _ in range(megabytes):
            yield chunk
            time.sleep(every)

    return Response(chunks(), mimetype="application/octet-stream",
                    headers={"Content-Length": str(megabytes << 20)})


@app.get("/blob/<int:megabytes>")
def blob(megabytes):
    # A large response made in memory, with its digest: a client that got
    # every byte, in order, computes the same.
    data = os.urandom(megabytes << 20)
    return Response(data, mimetype="application/octet-stream",
                    headers={"X-Sha256": hashlib.sha256(data).hexdigest()})


@app.get("/blob-file/<int:megabytes>")
def blob_file(megabytes):
    # The same as a file, sent as apps send downloads (send_file).
    path = os.path.join(tempfile.gettempdir(), f"blob-{megabytes}")
    if not os.path.exists(path):
        partial = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(partial, "wb") as out:
            out.write(os.urandom(megabytes << 20))
        os.replace(partial, path)
    with open(path, "rb") as source:
        digest = hashlib.file_digest(source, "sha256").hexdigest()
    response = send_file(path, mimetype="application/octet-stream")
    response.headers["X-Sha256"] = digest
    return response


def export_rows(rows: int):
    """The rows of /export, the same every time: a client checks its copy
    against export_digest()."""
    for row in range(rows):
        yield f"{row},customer-{row % 977},{row * 37 % 100003},{'x' * 40}\n".encode()


@app.get("/export/<int:rows>")
def export(rows):
    # A CSV export as apps stream them: a batch of rows every `every`
    # seconds (a query's next page), no Content-Length. `silent_after=N`
    # stops sending after N batches, as a stalled query would.
    every = float(request.args.get("every", "0.5"))
    batch = int(request.args.get("batch", "1000"))
    silent_after = int(request.args.get("silent_after", "0"))

    def batches():
        pending = []
        for number, line in enumerate(export_rows(rows), 1):
            pending.append(line)
            if len(pending) == batch or number == rows:
                yield b"".join(pending)
                pending = []
                sent = number // batch
                if silent_after and sent >= silent_after:
                    time.sleep(100000)
                time.sleep(every)

    return Response(batches(), mimetype="text/csv")


@app.get("/events")
def events():
    # Server-Sent Events that never end by themselves.
    def tick():
        number = 0
        while True:
            yield f"id: {number}\ndata: {number}\n\n"
            number += 1
            time.sleep(0.2)

    return Response(tick(), mimetype="text/event-stream")


COUNTER = {"count": 0}


@app.get("/count")
def count():
    # State kept in the process's memory: it keeps counting only while the
    # process (and the code) stays the same.
    COUNTER["count"] += 1
    return jsonify(count=COUNTER["count"], pid=os.getpid())


HELD: list[bytes] = []


@app.get("/hold/<int:megabytes>")
def hold(megabytes):
    # Memory the worker keeps (a cache without a bound, a leak): touched, so
    # that it is resident.
    HELD.append(b"\x01" * (megabytes << 20))
    return jsonify(held=len(HELD), pid=os.getpid())


LOGINS: dict[str, str] = {}


@app.post("/login")
def login():
    # A login kept in the process's memory, as many admin apps keep theirs:
    # only the process that holds the key knows the user.
    key = os.urandom(8).hex()
    LOGINS[key] = request.form.get("user", "someone")
    return jsonify(key=key, pid=os.getpid())


@app.get("/me")
def me():
    user = LOGINS.get(request.args.get("key", ""))
    if user is None:
        return jsonify(error="not logged in", pid=os.getpid()), 401
    return jsonify(user=user, pid=os.getpid())


@app.get("/.well-known/<path:name>")
def well_known(name):
    # ACME challenges and security.txt live here: never blocked as dotfiles.
    return f"well-known {name}\n"


@app.get("/conditional")
def conditional():
    # A page the app answers 304 itself (its ETag), as apps and send_file do.
    response = Response("<p>conditional</p>\n" * 100, mimetype="text/html")
    response.set_etag("page-1")
    return response.make_conditional(request)


@app.get("/vary-own")
def vary_own():
    # An app that names Accept-Encoding in its own Vary, on two lines beside
    # another token, as compression middleware and CORS helpers add them.
    response = Response("<p>varies</p>\n" * 100, mimetype=request.args.get("type", "text/html"))
    response.headers.add("Vary", "Accept-Encoding")
    response.headers.add("Vary", "Cookie, accept-encoding")
    return response


# A blueprint with its own static folder, served under the image's STATIC_URL:
# nginx has no such file, so the request falls through to the app.
assets = Blueprint("assets", __name__, static_folder="bp_static", static_url_path="/static/bp")
app.register_blueprint(assets)
