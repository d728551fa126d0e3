"""One psycopg2 connection opened at import and used under a lock, as a
small app written without forks in mind does."""
import os
import threading

import psycopg2
from echo import RAW_QUERY, answer
from flask import Flask, request

conn = psycopg2.connect(os.environ["DATABASE_URL"].replace("postgresql+psycopg2", "postgresql"))
conn.autocommit = True
lock = threading.Lock()
app = Flask(__name__)


@app.get("/echo")
def echo():
    with lock, conn.cursor() as cursor:
        cursor.execute(RAW_QUERY, {"token": request.args["token"]})
        return answer(cursor.fetchone()[0])
