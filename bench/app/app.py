"""The one app every contender serves: hello world, a rendered template, and
a 100 KB static file (written at image build time)."""

from flask import Flask, render_template

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/page")
def page():
    return render_template("page.html", title="Benchmark", items=[f"item {i}" for i in range(20)])
