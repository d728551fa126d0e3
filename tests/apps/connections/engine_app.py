"""An engine made at import that connects only in requests: nothing open
at the fork, so the app stays preloaded."""
import os

from echo import QUERY, answer
from flask import Flask, request
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["DATABASE_URL"])
app = Flask(__name__)


@app.get("/echo")
def echo():
    with engine.connect() as conn:
        return answer(conn.execute(text(QUERY), {"token": request.args["token"]}).scalar())
