"""Streams and real-time routes, as apps write them (docs/streaming.md).

/events      Server-Sent Events: `count` events, `every` seconds apart, each
             carrying the server's clock, so a client can time its arrival
/plain       the same as a text/plain generator (stream_with_context)
/answer      a finite event stream, GET or POST, as an LLM API's answer: `parts`
             parts `every` seconds apart, then `data: [DONE]`
/forever     an event stream that never ends by itself; records its end
/ended       which /forever streams ended, and how (GeneratorExit: cleanly)
/page        an ordinary 8 KB HTML page
/busy        an ordinary request that waits `seconds` (time.sleep, patched
             under gevent)
/spin        CPU work that never yields, for `seconds`
/ws          a flask-sock echo; "pid" answers with the worker's pid
Socket.IO    an "echo" event, answered with the worker's pid
"""

import json
import os
import time

from flask import Flask, Response, request, stream_with_context
from flask_sock import Sock
from flask_socketio import SocketIO, emit

app = Flask(__name__)
sock = Sock(app)
# async_mode left to Flask-SocketIO: gevent_uwsgi under WORKER_CLASS=gevent,
# threading under the sync workers and the dev server.
socketio = SocketIO(app)
ENDED = []


def events(count, every):
    for number in range(count):
        yield f"id: {number}\ndata: {json.dumps({'n': number, 'sent': time.time()})}\n\n"
        if number + 1 < count:
            time.sleep(every)


@app.get("/events")
def event_stream():
    count, every = int(request.args.get("count", 5)), float(request.args.get("every", 0.5))
    return Response(events(count, every), mimetype="text/event-stream")


@app.route("/answer", methods=["GET", "POST"])
def answer():
    parts, every = int(request.args.get("parts", 6)), float(request.args.get("every", 0.5))
    asked = (request.get_json(silent=True) or {}).get("prompt", "")

    def generate():
        for number in range(parts):
            time.sleep(every)
            yield f"data: {json.dumps({'part': number, 'prompt': asked})}\n\n"
        yield "data: [DONE]\n\n"
    return Response(stream_with_context(generate()), mimetype="text/event-stream")


@app.get("/plain")
def plain():
    count, every = int(request.args.get("count", 5)), float(request.args.get("every", 0.5))

    def lines():
        for event in events(count, every):
            yield event.replace("data: ", "")

    return Response(stream_with_context(lines()), mimetype="text/plain")


@app.get("/forever")
def forever():
    name = request.args.get("name", "stream")

    def tick():
        try:
            number = 0
            while True:
                yield f"data: {number}\n\n"
                number += 1
                time.sleep(0.2)
        except GeneratorExit:
            ENDED.append({"name": name, "how": "GeneratorExit"})
            raise
        except BaseException as exc:
            ENDED.append({"name": name, "how": type(exc).__name__})
            raise

    return Response(tick(), mimetype="text/event-stream")


@app.get("/ended")
def ended():
    return {"ended": ENDED}


@app.get("/page")
def page():
    return "<p>an ordinary page</p>\n" * 340


@app.get("/busy")
def busy():
    time.sleep(float(request.args.get("seconds", 0.05)))
    return {"pid": os.getpid()}


@app.get("/spin")
def spin():
    until = time.monotonic() + float(request.args.get("seconds", 1))
    while time.monotonic() < until:
        pass
    return {"pid": os.getpid()}


@sock.route("/ws")
def echo(ws):
    while True:
        message = ws.receive()
        ws.send(str(os.getpid()) if message == "pid" else message)


@socketio.on("echo")
def socketio_echo(data):
    emit("echo", {"data": data, "pid": os.getpid()})
