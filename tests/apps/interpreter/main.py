"""An app that times work.py in a worker, and starts child Pythons as apps
do (tests/test_interpreter.py)."""

import multiprocessing
import subprocess
import sys

import work
from flask import Flask, jsonify, request

app = Flask(__name__)


def flask_version(_):
    from importlib.metadata import version
    return version("flask")


@app.get("/")
def index():
    return "ok"


@app.get("/work")
def timed():
    return str(work.best_of())


@app.get("/timeline")
def runs():
    return jsonify(work.timeline(seconds=request.args.get("seconds", 1.0, type=float),
                                 pinned="pinned" in request.args))


@app.get("/children")
def children():
    # A child Python started as apps do: sys.executable, and
    # multiprocessing's spawn and forkserver (Python 3.14's default), each a
    # new interpreter; leaving `with` terminates the pool's children.
    child = subprocess.run([sys.executable, "-c", "import flask, sys; print(sys.prefix)"],
                           capture_output=True, text=True, timeout=30)
    versions = []
    for method in ("spawn", "forkserver"):
        with multiprocessing.get_context(method).Pool(1) as pool:
            versions.append(pool.map(flask_version, [0])[0])
    return f"{child.returncode} {child.stdout.strip()} {' '.join(versions)}"
