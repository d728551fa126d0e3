"""SearXNG's shape: no static folder of Flask's (static_folder=None), the
static files WhiteNoise's, wrapped around app.wsgi_app."""

import hashlib
from pathlib import Path

from flask import Flask, Response, request, send_file
from whitenoise import WhiteNoise

HERE = Path(__file__).parent

app = Flask(__name__, static_folder=None)
# As SearXNG does: WhiteNoise answers /static/... before Flask sees it.
app.wsgi_app = WhiteNoise(app.wsgi_app, root=HERE / "static", prefix="static/", max_age=3600)

PAGE = "<p>results</p>\n" * 200


@app.get("/")
def index():
    return "searx-like\n"


@app.get("/download/report.css")
def report():
    # Flask's own send_file: ETag from the file's time and size, compared
    # weakly by Werkzeug.
    return send_file(HERE / "data" / "report.css", mimetype="text/css")


@app.get("/page")
def page():
    # A handler that compares its ETag byte for byte, as many apps' do.
    etag = '"' + hashlib.sha256(PAGE.encode()).hexdigest()[:16] + '"'
    if request.headers.get("If-None-Match") == etag:
        return Response(status=304, headers={"ETag": etag})
    return Response(PAGE, mimetype="text/html", headers={"ETag": etag, "Cache-Control": "no-cache"})


@app.get("/private")
def private():
    # An answer never to be stored: a revalidation of it stays a 200.
    return Response(PAGE, mimetype="text/html", headers={"ETag": '"private-1"', "Cache-Control": "no-store"})
