"""The part of a request's body the app did not read is read by the
wrapper (flaskbox/request/request.py, as serve.Serve drives it), so that uWSGI never closes
the connection while nginx still sends it (nginx then answered 502 in place
of the app's 405, 401 or 413): before a made answer is sent, or at the end
of a stream, whose generator may still read the body itself. Without a
container; tests/test_form_uploads.py proves it against real ones."""

import io

from flaskbox.request import serve

BODY = 300_000


class Input(io.BytesIO):
    """wsgi.input that records when it is first read."""

    def __init__(self, events):
        super().__init__(b"x" * BODY)
        self.events = events

    def read(self, size=-1):
        if self.tell() == 0:
            self.events.append("body read")
        return super().read(size)


def post(events):
    return {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(BODY), "wsgi.input": Input(events)}


def start_response(status, headers, exc_info=None):
    pass


def served(app):
    return serve.Serve(app, 5)


def test_a_list_answer_reads_the_body_before_returning():
    environ = post([])

    def app(environ, start_response):
        start_response("405 METHOD NOT ALLOWED", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"no"]

    assert served(app)(environ, start_response) == [b"no"]
    assert environ["wsgi.input"].tell() == BODY


def test_a_sized_generator_has_the_body_read_before_any_item():
    events = []
    environ = post(events)

    def app(environ, start_response):
        start_response("413 REQUEST ENTITY TOO LARGE", [("Content-Length", "4")])

        def body():
            events.append("item")
            yield b"nope"
        return body()

    result = served(app)(environ, start_response)
    assert events == ["body read"] and environ["wsgi.input"].tell() == BODY
    assert list(result) == [b"nope"] and events == ["body read", "item"]


def test_a_stream_has_the_body_read_at_close_after_it_ran():
    events = []
    environ = post(events)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def body():
            try:
                events.append("item")
                yield b"data: 1\n\n"
            finally:
                events.append("stream ended")
        return body()

    result = served(app)(environ, start_response)
    assert list(result)[0] == b"9\r\ndata: 1\n\n\r\n"  # framed as chunked
    assert events == ["item", "stream ended"] and environ["wsgi.input"].tell() == 0
    result.close()
    assert events == ["item", "stream ended", "body read"] and environ["wsgi.input"].tell() == BODY


def test_a_request_without_a_body_gets_the_apps_own_answer():
    answer = [b"hello"]

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return answer

    environ = {"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    assert served(app)(environ, start_response) is answer
