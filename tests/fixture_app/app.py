"""Test app, deliberately unlike the sample: no static route of its own, so a
static file that answers 200 can only have come from nginx."""

import os

from flask import Flask

app = Flask(__name__, static_folder=None)


@app.get("/")
def index():
    return "fixture app\n"


@app.get("/boom")
def boom():
    # The secret reaches the log in the traceback, never the client.
    raise RuntimeError(f"secret {os.environ.get('SECRET_TOKEN', 'unset')}")
