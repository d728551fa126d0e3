"""A package named `app`, as larger Flask apps are laid out: a factory,
Flask-SQLAlchemy, Flask-Migrate, SQLite in the instance folder."""

import os

from flask import Flask, jsonify, request
from flask_migrate import Migrate

from .models import Note, db

migrate = Migrate()


def create_app():
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "notes.db")
    db.init_app(app)
    migrate.init_app(app, db)

    @app.get("/notes")
    def notes():
        return jsonify([note.body for note in db.session.scalars(db.select(Note).order_by(Note.id))])

    @app.post("/notes")
    def add():
        db.session.add(Note(body=request.form["body"]))
        db.session.commit()
        return jsonify(count=db.session.query(Note).count()), 201

    return app
