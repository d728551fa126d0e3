"""An app pinned to Flask 2.2: it reports the versions it runs on."""

import flask
import werkzeug
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/versions")
def versions():
    return jsonify(flask=flask.__version__, werkzeug=werkzeug.__version__)
