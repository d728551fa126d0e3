import os

from flask import Blueprint, current_app, jsonify, render_template, request

from .db import get_db

bp = Blueprint("notes", __name__)


@bp.get("/")
def index():
    notes = get_db().execute("SELECT body FROM note ORDER BY id").fetchall()
    return render_template("index.html", notes=[row["body"] for row in notes])


@bp.post("/notes")
def add():
    db = get_db()
    db.execute("INSERT INTO note (body) VALUES (?)", (request.form["body"],))
    db.commit()
    return jsonify(count=db.execute("SELECT COUNT(*) FROM note").fetchone()[0]), 201


@bp.get("/whoami")
def whoami():
    # Where the app lives and writes, and as whom.
    return jsonify(app="flaskr", instance_path=current_app.instance_path, uid=os.getuid(),
                   static_folder=current_app.static_folder)
