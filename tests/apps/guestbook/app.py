"""A guestbook: each signature is a row in a SQLite database and a file in
an uploads folder, both in the instance folder, both made by the first
request that needs them (CREATE TABLE IF NOT EXISTS, os.makedirs)."""

import os
import sqlite3

from flask import Flask, jsonify, request

app = Flask(__name__)


def database() -> sqlite3.Connection:
    db = sqlite3.connect(os.path.join(app.instance_path, "guestbook.sqlite"))
    db.execute("CREATE TABLE IF NOT EXISTS signature (name TEXT NOT NULL, uid INTEGER NOT NULL)")
    return db


@app.post("/sign")
def sign():
    name = request.form["name"]
    with database() as db:
        db.execute("INSERT INTO signature VALUES (?, ?)", (name, os.getuid()))
    uploads = os.path.join(app.instance_path, "uploads")
    os.makedirs(uploads, exist_ok=True)
    with open(os.path.join(uploads, "signatures.txt"), "a") as log:
        log.write(f"{name}\n")
    with open(os.path.join(uploads, f"{name}.txt"), "w") as card:
        card.write(f"signed by uid {os.getuid()}\n")
    return jsonify(signed=name), 201


@app.get("/signatures")
def signatures():
    with database() as db:
        rows = db.execute("SELECT name, uid FROM signature ORDER BY rowid").fetchall()
    return jsonify([list(row) for row in rows])
