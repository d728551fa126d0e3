"""Why an app's exception reached the wrapper, said in the log line over
its traceback (serve.Serve.passed_on): what happened, not a guess.

Flask answers an exception with its error handlers and passes it on only
with app.debug, TESTING or PROPAGATE_EXCEPTIONS on. Otherwise one reached
the server because an error handler raised while it answered another (CKAN
renders its error page with a template that may itself fail), or because
it was raised outside Flask's handling, in a middleware around the app; and
a WSGI app of another kind passes its exceptions on as it likes. Only a
request that failed comes here."""

from __future__ import annotations

from . import stacks

# How many layers of middleware are looked through for the Flask app
# (CKAN's is inside I18nMiddleware and HostHeaderMiddleware, and keeps it
# as _wsgi_app).
DEPTH = 8
# Where Flask answers an exception with the app's handlers (flask/app.py,
# and flask/sansio/app.py since 2.3).
HANDLING = ("handle_exception", "handle_user_exception", "handle_http_exception")


def flask_within(app):
    """The Flask app that `app` is or wraps, or None."""
    try:
        from flask import Flask
    except ImportError:
        return None
    for _ in range(DEPTH):
        if app is None or isinstance(app, Flask):
            return app
        app = (getattr(app, "_wsgi_app", None) or getattr(app, "app", None)
               or getattr(app, "application", None))
    return None


def why(app, kind: str, tb) -> str:
    """What the log line says happened, for an exception of class name
    `kind` whose traceback is `tb`."""
    frames = stacks.unwound(tb)
    where = stacks.where(frames) if frames else "a place Python did not record"
    flask = flask_within(app)
    if flask is None:
        return f"the app raised {kind} at {where} (a WSGI app passes its exceptions on to the server)"
    flags = (("app.debug", flask.debug), ("TESTING", flask.config.get("TESTING")),
             ("PROPAGATE_EXCEPTIONS", flask.config.get("PROPAGATE_EXCEPTIONS")))
    on = [name for name, value in flags if value]
    if on:
        return f"the app passed {kind} on, at {where} ({' and '.join(on)} on: Flask then passes them on)"
    if any(function in HANDLING and "/flask/" in file for file, _, function in frames):
        return f"the app's error handler raised {kind} while it answered an error, at {where}"
    return (f"{kind} was raised outside Flask's own handling, at {where} (a middleware around the app, or "
            "a teardown)")
