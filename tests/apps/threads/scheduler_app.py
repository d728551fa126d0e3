"""APScheduler's BackgroundScheduler, started at import, counting ticks."""
import os

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

TICKS = []


def tick():
    TICKS.append(os.getpid())


scheduler = BackgroundScheduler()
scheduler.add_job(tick, "interval", seconds=0.2)
scheduler.start()

app = Flask(__name__)


@app.get("/")
def index():
    # Ticks counted in this process by the scheduler's thread.
    return {"pid": os.getpid(), "ticks": TICKS.count(os.getpid())}
