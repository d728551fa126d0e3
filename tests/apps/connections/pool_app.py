"""A factory whose Flask-SQLAlchemy pool is queried while the app is made,
as CKAN reads its system_info table: the connection goes back to the pool,
open, in uWSGI's master. HOLD=1 keeps a Session's connection out of the
pool instead, as an import that never commits or closes it does."""
import os

from echo import QUERY, answer
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

db = SQLAlchemy()
held = None


def create_app():
    global held
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)
    with app.app_context():
        app.config["SITE_TITLE"] = db.session.execute(text("SELECT 'flaskbox site'")).scalar()
        if os.environ.get("HOLD") == "1":
            held = db.engine.connect()
            held.execute(text("SELECT 1"))

    @app.get("/echo")
    def echo():
        return answer(db.session.execute(text(QUERY), {"token": request.args["token"]}).scalar())

    return app


app = create_app()
