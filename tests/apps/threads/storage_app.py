"""opendal's Operator, written to at import: its Rust (tokio) runtime's
threads start then, as Dify's storage does."""
import os
import tempfile

import opendal
from flask import Flask

ROOT = os.path.join(tempfile.gettempdir(), "storage")
storage = opendal.Operator("fs", root=ROOT)
# A file of each process's own: with the app loaded in each worker, two
# writes of one file at once fail ("writer got too much data").
storage.write(f"hello-{os.getpid()}.txt", b"written at import")

app = Flask(__name__)


@app.get("/")
def index():
    name = f"{os.getpid()}.txt"
    storage.write(name, f"written by pid {os.getpid()}".encode())
    return storage.read(name).decode()
