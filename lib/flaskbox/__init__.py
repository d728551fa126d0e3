"""flaskbox's own Python: the data work of the image, stdlib only.

entry-point.sh runs processes; this package computes and checks data, once,
before the servers start, and then gets out of the way:

    settings   the table of every setting: default, accepted form, modes, doc
    host       what this container may use: CPUs, memory, disk, file limits
    render     nginx.conf and app.ini filled in from the settings
    wsgi       what uWSGI loads, once, in its master: the user's app, wrapped
    serve      the wrapper, per request: what the proxy hop needs (client
               address, framing, abandoned requests)

`python3 -m flaskbox --help` lists its commands.
"""
