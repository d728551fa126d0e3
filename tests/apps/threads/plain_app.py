"""No thread left: preloaded, its memory shared."""
import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"plain in pid {os.getpid()}"
