"""An asyncio loop run in a thread started at import, which each request
hands its coroutine to, as SearXNG's outgoing network does."""
import asyncio
import os
import threading

from flask import Flask

LOOP = asyncio.new_event_loop()
threading.Thread(target=LOOP.run_forever, name="network-loop", daemon=True).start()

app = Flask(__name__)


async def fetch() -> str:
    await asyncio.sleep(0.01)
    # Only the loop's own thread, in this process, can say this.
    return f"loop thread {threading.current_thread().name} in pid {os.getpid()}"


@app.get("/")
def index():
    return asyncio.run_coroutine_threadsafe(fetch(), LOOP).result(timeout=3)


@app.get("/pid")
def pid():
    return str(os.getpid())
