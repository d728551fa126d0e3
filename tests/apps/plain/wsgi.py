"""A plain WSGI app, no framework: found in wsgi.py as `application`."""


def application(environ, start_response):
    body = f"plain wsgi {environ['PATH_INFO']} from {environ.get('REMOTE_ADDR')}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
