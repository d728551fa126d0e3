"""A project described by pyproject.toml (flat layout: the package beside
it), installed with `pip install -e /app`; it reports what it runs on."""

import sys
from importlib import metadata

import markdown
from flask import Flask, jsonify, render_template_string


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        return render_template_string("{{ html|safe }}", html=markdown.markdown("# shop *ready*"))

    @app.get("/versions")
    def versions():
        return jsonify(flask=metadata.version("flask"), markdown=metadata.version("markdown"),
                       uwsgi=metadata.version("uwsgi"), shop=metadata.version("shop"),
                       module=sys.modules[__name__].__file__, instance=app.instance_path)

    return app
