"""redis-py used at import (a feature flag read, as CKAN checks Redis): its
pool checks its pid, so each worker opens its own connections."""
import os

import redis
from flask import Flask, request

client = redis.Redis.from_url(os.environ["REDIS_URL"])
client.set("flaskbox:started", "yes")
app = Flask(__name__)


@app.get("/echo")
def echo():
    token = request.args["token"]
    # A round trip only this request's connection can answer: its own
    # token, set and read back in one transaction, and its connection's id.
    pipe = client.pipeline()
    pipe.set(f"flaskbox:{token}", token, ex=60).get(f"flaskbox:{token}").client_id()
    _, got, backend = pipe.execute()
    return {"token": got.decode(), "backend": backend, "pid": os.getpid()}
