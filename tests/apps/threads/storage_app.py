"""opendal's Operator, written to at import: its Rust (tokio) runtime's
threads start then, as Dify's storage does."""
import os
import tempfile

import opendal
from flask import Flask

ROOT = os.path.join(tempfile.gettempdir(), "storage")
storage = opendal.Operator("fs", root=ROOT)
storage.write("hello.txt", b"written at import")

app = Flask(__name__)


@app.get("/")
def index():
    name = f"{os.getpid()}.txt"
    storage.write(name, f"written by pid {os.getpid()}".encode())
    return storage.read(name).decode()
