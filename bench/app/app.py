"""The one app every contender serves: hello world, a rendered template, a
realistic page (the template after a 1 ms wait standing in for a database
call), the same after a 5 ms wait (a slower query), a large download made in
memory, a 100 KB static file (written at image build time), and Server-Sent
Events (an event every `every` seconds, stamped with the server's clock)."""

import hashlib
import json
import os
import time

from flask import Flask, Response, render_template, request

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/page")
def page():
    return render_template("page.html", title="Benchmark", items=[f"item {i}" for i in range(20)])


@app.get("/realistic")
def realistic():
    time.sleep(0.001)  # a database query's round trip
    return page()


@app.get("/wait")
def wait():
    time.sleep(0.005)  # a query that takes 5 ms
    return page()


@app.get("/download")
def download():
    # Random bytes with their digest: a client that got all of them, in
    # order, computes the same.
    data = os.urandom(int(request.args.get("mb", 24)) << 20)
    return Response(data, mimetype="application/octet-stream",
                    headers={"X-Sha256": hashlib.sha256(data).hexdigest()})


@app.get("/events")
def events():
    count, every = int(request.args.get("count", 10)), float(request.args.get("every", 1))

    def generate():
        for number in range(count):
            yield f"data: {json.dumps({'n': number, 'sent': time.time()})}\n\n"
            time.sleep(every)

    return Response(generate(), mimetype="text/event-stream")
