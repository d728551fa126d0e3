"""A sample Flask app: read it in a minute, then replace it with your own.

The image finds your app as `flask run` does: wsgi.py, app.py or main.py in
/app, or whatever APP_MODULE names (docs/your-app.md).
"""

from flask import Flask, jsonify, render_template, request

app = Flask(__name__)


@app.get("/")
def index():
    # /?name=John greets John; Jinja2 escapes the value.
    name = request.args.get("name", "World")
    return render_template("index.html", name=name)


@app.get("/favicon.ico")
def favicon():
    # Browsers ask for /favicon.ico on every site; the page links the same file.
    return app.send_static_file("favicon.ico")


@app.get("/api/hello")
def api_hello():
    name = request.args.get("name", "World")
    return jsonify(message=f"Hello, {name}!")
