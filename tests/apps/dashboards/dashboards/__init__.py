"""A dashboard app shaped like Superset: explore links carry the chart's
state in the query string; without a sign-in they redirect to the login
page with the whole link in ?next=."""

import os

from flask import Blueprint, Flask, make_response, redirect, request, url_for
from flask_admin import Admin


def create_app():
    app = Flask(__name__)
    # Superset sets a year; unset, Flask's default (revalidate each time).
    if os.environ.get("DASHBOARDS_MAX_AGE"):
        app.config["SEND_FILE_MAX_AGE_DEFAULT"] = int(os.environ["DASHBOARDS_MAX_AGE"])
    # Flask-AppBuilder's own static folder, under the app's /static.
    app.register_blueprint(Blueprint("appbuilder", __name__, static_folder="appbuilder",
                                     static_url_path="/static/appbuilder"))
    # Flask-Admin's, at /admin/static.
    Admin(app, name="dashboards")

    @app.get("/explore/")
    def explore():
        if request.cookies.get("session_user") is None:
            return redirect(url_for("login", next=request.url))
        return {"form_data": len(request.args.get("form_data", "")), "user": request.cookies["session_user"]}

    @app.get("/login/")
    def login():
        return {"next": len(request.args.get("next", ""))}

    @app.get("/huge-cookie/<int:kilobytes>")
    def huge_cookie(kilobytes):
        # An app's own mistake: more header than any proxy buffer should take.
        response = make_response("set\n")
        for part in range(kilobytes // 4):
            response.set_cookie(f"part{part}", "c" * 4000)
        return response

    @app.get("/huge-header/<int:size>")
    def huge_header(size):
        # The same mistake in one header (a state blob of `size` bytes).
        return "set\n", {"X-State": "s" * size}

    return app
