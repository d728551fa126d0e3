"""The body of a request's answer, the steps request.Request takes with it:
what uWSGI is handed (Request.finish; rarer() here for any but the usual
answer), the parts it then asks for (Request's __iter__: watched() here, or
streams.flow for a stream) and what closing it gives back (closed), so that
every step of the body follows the decisions start_response made once.

- REQUEST_TIMEOUT (sync workers): the clock runs while the app makes the
  answer, and each part of it; the request's own thread claims the answer
  before its first bytes go, or the watchdog does (guards.py answers 504):
  never both.
- The usual answer (made whole, or with a Content-Length) has its first
  part made under the clock in Request.finish, and leaves as a list: uWSGI has
  nothing left to ask of the wrapper. Any other made answer's parts are
  watched one by one as uWSGI asks for them; a stream's go through
  streams.flow.
- closed() reads the rest of the request's body; release() gives back what
  the answer held (the watchdog's registry, the spool's bytes, the client's
  share of threads), on every way out: closed, refused, answered 504 or
  500, a WebSocket ended, an exception passed up.

The rest of a request's body the app did not read is read here before
uWSGI ends the answer. An app may answer without reading it (a 405 or 401
to an upload, Flask's 413, the wrapper's own 503s): uWSGI then closed the
connection while nginx still sent the body, nginx's write failed, and the
client got 502 instead of the app's answer. nginx sends the body fast, from
its own buffer, so reading it costs the worker little (10 MB in
milliseconds). A made answer (a Content-Length, a list, a file) has it read
before uWSGI sends any of it; a stream, whose generator may still read the
body, at its end. (Only what the socket holds, some 256 KB, can be read
then: nginx closes its copy of the body once the answer begins.
docs/your-app.md says to read an upload in the view, then stream.)
"""

from __future__ import annotations

from functools import partial
from threading import get_ident
from time import monotonic

from . import outbound

READ_CHUNK = 1 << 16


def close(body) -> None:
    method = getattr(body, "close", None)
    if method is not None:
        method()


def rest_of_body(environ) -> None:
    """Reads what is left of the request's body; a client gone meanwhile ends it."""
    stream = environ["wsgi.input"]
    try:
        while stream.read(READ_CHUNK):
            pass
    except (OSError, ValueError):
        pass  # nothing left to send the answer to


def sync_wrapper(wrapper, running: dict):
    """sync's wsgi.file_wrapper, as the app is given it: uWSGI's, noting the
    files it gives on the request its thread runs (found in REQUEST_TIMEOUT's
    registry), so that an answer that is one goes back to uWSGI untouched.
    One a worker (serve.Serve keeps it): no object is made a request."""
    return partial(note_file, wrapper, running)


def gevent_wrapper(wrapper, request):
    """gevent's: greenlets share a thread, so no registry by thread finds
    their request; one a request, noting the files in its own list."""
    request.files = files = []
    return partial(wrap_file, wrapper, files)


def note_file(wrapper, running: dict, filelike, *args, **kwargs):
    """sync's wsgi.file_wrapper: the file given is noted on the request this
    thread runs (one that runs it outside the request's thread is not: the
    file is then sent as any other answer)."""
    given = wrapper(filelike, *args, **kwargs)
    request = running.get(get_ident())
    if request is not None:
        request.files = [*request.files, given]
    return given


def wrap_file(wrapper, files: list, filelike, *args, **kwargs):
    """gevent's wsgi.file_wrapper, noting the files it gives in the request's list."""
    given = wrapper(filelike, *args, **kwargs)
    files.append(given)
    return given


def given_file(request, result) -> bool:
    """Whether the answer is a file wsgi.file_wrapper gave (uWSGI's to send)."""
    return any(result is given for given in request.files)


def rarer(request, result):
    """Request.finish, for the rarer answers: one refused, a stream, a request
    with a body left to read, an answer that holds the spool or a slot
    until it is sent, or gevent's (no watchdog)."""
    request.stop_clock()
    body_left = request.body_left
    if request.instead is not None:
        request.unwatch()
        close(result)
        if body_left:
            rest_of_body(request.environ)
        return [request.instead.body]
    if request.chunked is not False:
        # A stream, or an answer whose start_response comes with its
        # first part: the app's generator may still read the body.
        request.unread = body_left
        request.body = result
        return request
    if isinstance(result, (list, tuple)) or (request.files and given_file(request, result)):
        # All of it is made: what is left is uWSGI's to send (a file,
        # from an offload thread), at the client's pace.
        if request.watched:
            request.unwatch()
            if not request.claim("app"):
                try:
                    close(result)
                finally:
                    release(request)
                return []  # answered 504 already
        if body_left:
            rest_of_body(request.environ)
    elif body_left:
        if request.length is not None:
            rest_of_body(request.environ)  # made whole before it is sent
        else:
            request.unread = True
    if request.spooled or request.unread or request.slot is not None:
        # What it holds is given back when uWSGI closes it.
        request.body = result
        return request
    if request.watched:
        return watched(request, result, iter(result), None, True)
    return result


def watched(request, body, iterator, first, closing: bool):
    """A made answer's parts under REQUEST_TIMEOUT's clock (`first`, if
    not None, made already): until the first part is sent it counts from
    the request's arrival; from then on it counts the wait for each next
    part (a silence), so an answer that keeps sending is never cut,
    however long it lasts. Not while uWSGI writes to a slow client,
    which send timeouts bound instead. `closing`: the body is closed
    here (the request is not uWSGI's to close)."""
    stalls = request.slot is not None and request.stalls
    try:
        while True:
            if first is None:
                request.since = monotonic()
                try:
                    data = next(iterator)
                except StopIteration:
                    return
                finally:
                    request.used += monotonic() - request.since
                    request.since = None
            else:
                data, first = first, None
            if not request.answering():
                return  # past REQUEST_TIMEOUT: cut, or answered 504 already
            if stalls and outbound.stalled(request):
                return
            yield data
            request.used = 0.0
    finally:
        try:
            if closing:
                close(body)
        finally:
            request.unwatch()


def closed(request) -> None:
    """uWSGI has sent what it will of the answer (Request.close): the rest
    of the request's body is read, and what the answer held is given back."""
    try:
        if request.unread:
            request.unread = False
            rest_of_body(request.environ)
        if request.parts is not None:
            request.parts.close()
            request.parts = None  # it holds the request: no cycle left
        close(request.body)
    finally:
        release(request)


def release(request) -> None:
    """What the request holds until its answer has gone, given back (each
    once): its place in the watchdog's registry, the spool's bytes, the
    client's share of threads."""
    request.unwatch()
    serve = request.serve
    if request.spooled:
        serve.spool.written(request.spooled, serve.worker_id())
        request.spooled = 0
    if request.slot is not None:
        serve.share.give_back(request.slot)
        request.slot = None
