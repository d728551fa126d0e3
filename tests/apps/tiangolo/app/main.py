"""tiangolo/uwsgi-nginx-flask's example layout: main.py with `app`."""

import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/hello")
def hello():
    return jsonify(app="main", prestart=os.path.exists("/app/instance/prestart-ran"))


@app.post("/upload")
def upload():
    from flask import request

    return jsonify(received=len(request.get_data()))
