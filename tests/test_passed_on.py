"""Why an app's exception reached the server, in process
(request/passed_on.py): the log line says what happened. CKAN's own error
handler raised while it rendered its error page, and the line said Flask
passes exceptions on with app.debug, TESTING or PROPAGATE_EXCEPTIONS on,
none of which was. The container's side: test_errors.py."""

from __future__ import annotations

import sys

from flask import Flask

from flaskbox.request import passed_on


def raised(app, path: str = "/"):
    """The exception `app` passes on for a GET of `path`, and its traceback."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_NAME": "test", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "wsgi.input": sys.stdin.buffer, "wsgi.errors": sys.stderr}
    try:
        app(environ, lambda *args: None)
    except Exception:
        kind, _, tb = sys.exc_info()
        return kind.__name__, tb
    raise AssertionError("the app answered")


def broken() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index():
        return {}["missing"]

    return app


def test_debug_on_is_named_as_what_passed_it_on():
    app = broken()
    app.debug = True
    line = passed_on.why(app, *raised(app))
    assert line.startswith("the app passed KeyError on, at ") and "test_passed_on.py" in line
    assert line.endswith("(app.debug on: Flask then passes them on)")


def test_an_error_handler_that_raises_is_named_and_flags_that_are_off_are_not():
    app = broken()

    @app.errorhandler(500)
    def error_page(error):
        return ["a page"][3]  # the error page's template fails in its turn

    line = passed_on.why(app, *raised(app))
    assert line.startswith("the app's error handler raised IndexError while it answered an error, at "), line
    assert "in error_page" in line and "PROPAGATE_EXCEPTIONS" not in line and "debug" not in line


class Middleware:
    """A layer around the app, as CKAN's: it keeps the app as _wsgi_app."""

    def __init__(self, app):
        self._wsgi_app = app

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] == "/fails-here":
            raise ValueError("the middleware's own")
        return self._wsgi_app(environ, start_response)


def test_a_middlewares_own_exception_and_a_bare_wsgi_app_are_told_apart():
    app = Middleware(broken())
    app._wsgi_app.debug = True
    # Found through the layer: the debug flag is the app's.
    assert passed_on.why(app, *raised(app)).endswith("(app.debug on: Flask then passes them on)")
    app._wsgi_app.debug = False
    line = passed_on.why(app, *raised(app, "/fails-here"))
    assert line.startswith("ValueError was raised outside Flask's own handling, at ")
    assert "in __call__" in line

    def bare(environ, start_response):
        raise RuntimeError("no Flask here")

    assert passed_on.why(bare, *raised(bare)).startswith("the app raised RuntimeError at ")
