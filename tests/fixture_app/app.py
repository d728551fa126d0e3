"""Test app, deliberately unlike the sample: no static route of its own, so a
static file that answers 200 can only have come from nginx."""

import os
import sys
import time

from flask import Flask, jsonify, request

app = Flask(__name__, static_folder=None)


@app.get("/")
def index():
    return "fixture app\n"


@app.get("/boom")
def boom():
    # The secret reaches the log in the traceback, never the client.
    raise RuntimeError(f"secret {os.environ.get('SECRET_TOKEN', 'unset')}")


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


@app.post("/upload")
def upload():
    # How much of the body arrived, for the body-size limit.
    return jsonify(received=len(request.get_data()))


@app.get("/headers")
def headers():
    # Length of each header the app received, for the header-size limits.
    return jsonify({name.lower(): len(value) for name, value in request.headers.items()})


@app.get("/framed")
def framed():
    # An app that sets its own hardening headers: nginx must not add a second.
    return "framed\n", 200, {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
