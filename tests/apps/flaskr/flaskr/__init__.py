"""A package with an app factory and SQLite in the instance folder, shaped
like Flask's tutorial app (flaskr)."""

import os

from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY="dev", DATABASE=os.path.join(app.instance_path, "flaskr.sqlite"))
    if test_config:
        app.config.update(test_config)
    # The instance folder is the one place the app writes.
    os.makedirs(app.instance_path, exist_ok=True)

    from . import db, notes

    db.init_app(app)
    app.register_blueprint(notes.bp)
    return app
