"""An app that imports a driver whose import starts a thread that only
waits for the main thread's end, then closes its pools (python-oracledb
2's close_pools_gracefully, under Redash): nothing a worker needs."""
import pools  # noqa: F401 (its import starts the thread)
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"pools open: {len(pools.OPEN)}"
