"""A large app's shape, as issue 22 met it: a package with a factory whose
module writes next to its own code at import (a `.data/` folder beside the
package, where SQLite lives), a secret-key file beside the package that it
falls back to silently when it cannot write it, an uploads folder inside the
package (shipped with a welcome.txt, the seed of the volume's copy), Alembic
migrations, an event stream on every page, older Flask and gevent pinned,
and `distutils` imported as old code does; its own Prometheus metrics at
/metrics, prometheus_client's WSGI app mounted beside Flask's."""

import hashlib
import os
import sys
from distutils.util import strtobool

import sqlalchemy as sa
from flask import Flask, jsonify, redirect, render_template, request, url_for
from prometheus_client import make_wsgi_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .models import entry

# Written at import, relative to the code, as the real app does.
DATA = os.path.join(os.path.dirname(__file__), "..", ".data")
os.makedirs(DATA, exist_ok=True)
DATABASE_URL = "sqlite:///" + os.path.abspath(os.path.join(DATA, "board.db"))
KEY_FILE = os.path.join(os.path.dirname(__file__), "..", ".secret_key")
UPLOADS = os.path.join(os.path.dirname(__file__), "uploads")


def secret_key():
    """The saved key, else a new one saved for next time; when it cannot be
    saved, the new key is used anyway and every restart logs everyone out."""
    try:
        with open(KEY_FILE, "rb") as file:
            return file.read()
    except OSError:
        pass
    key = os.urandom(32)
    try:
        with open(KEY_FILE, "wb") as file:
            file.write(key)
    except OSError:
        pass
    return key


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secret_key()
    app.config["STRICT"] = bool(strtobool(os.environ.get("BOARD_STRICT", "no")))
    engine = sa.create_engine(DATABASE_URL)

    @app.get("/")
    def index():
        with engine.connect() as connection:
            entries = connection.scalars(sa.select(entry.c.body).order_by(entry.c.id)).all()
        return render_template("index.html", entries=entries)

    @app.post("/entries")
    def add():
        with engine.begin() as connection:
            connection.execute(entry.insert().values(body=request.form["body"]))
        return redirect(url_for("index"))

    @app.post("/uploads/<name>")
    def upload(name):
        os.makedirs(UPLOADS, exist_ok=True)
        with open(os.path.join(UPLOADS, name), "wb") as file:
            file.write(request.get_data())
        return jsonify(saved=url_for("uploaded", name=name)), 201

    @app.get("/uploads/<name>")
    def uploaded(name):
        with open(os.path.join(UPLOADS, name), "rb") as file:
            return file.read()

    @app.get("/events")
    def events():
        with engine.connect() as connection:
            count = connection.scalar(sa.select(sa.func.count()).select_from(entry))
        return app.response_class(iter([f"data: {count}\n\n"]), mimetype="text/event-stream")

    @app.get("/whoami")
    def whoami():
        modules = {name: getattr(sys.modules.get(name), "__version__", None)
                   for name in ("gevent", "greenlet")}
        return jsonify(app="board", key=hashlib.sha256(app.secret_key).hexdigest()[:16],
                       flask=sys.modules["flask"].__version__, distutils=sys.modules["distutils"].__file__,
                       index=url_for("index"), static=url_for("static", filename="board.css"),
                       **modules)

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})
    return app
