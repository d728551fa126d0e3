# How the board ran before it came to this image: gunicorn with gevent's
# workers, for the event stream on every page. flaskbox reads it only to
# advise WORKER_CLASS=gevent (tests/test_gevent_pins.py).
bind = "0.0.0.0:8000"
workers = 2
worker_class = "gevent"
