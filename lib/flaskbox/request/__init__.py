"""The WSGI wrapper, per request, in each uWSGI worker: from nginx to the app
and back."""
