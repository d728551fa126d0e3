"""The one app every contender serves: hello world, a rendered template, a
realistic page (the template after a 1 ms wait standing in for a database
call), a 100 KB static file (written at image build time), and Server-Sent
Events (an event every `every` seconds, stamped with the server's clock)."""

import json
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


@app.get("/events")
def events():
    count, every = int(request.args.get("count", 10)), float(request.args.get("every", 1))

    def generate():
        for number in range(count):
            yield f"data: {json.dumps({'n': number, 'sent': time.time()})}\n\n"
            time.sleep(every)

    return Response(generate(), mimetype="text/event-stream")
