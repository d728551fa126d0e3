"""The body of a request's answer (request.Request is a Body): the request
is what uWSGI iterates and closes, so that every step of the body follows
the decisions start_response made once.

- REQUEST_TIMEOUT (sync workers): the clock runs while the app makes the
  answer, and each part of it; the request's own thread claims the answer
  before its first bytes go, or the watchdog does (guards.py answers 504):
  never both.
- The usual answer (made whole, or with a Content-Length) has its first
  part made under the clock in finish(), and leaves as a list: uWSGI has
  nothing left to ask of the wrapper. Any other made answer's parts are
  watched one by one as uWSGI asks for them; a stream's go through
  streams.flow.
- close() gives back what the answer held: the rest of the request's body
  read, the spool's bytes, the client's share of threads.

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

import threading
from threading import get_ident
from time import monotonic

from . import outbound, streams
from .log import log

READ_CHUNK = 1 << 16
# One lock for every claim of an answer (held for a test and a store).
CLAIMS = threading.Lock()


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


class Body:
    """The answer's body, and REQUEST_TIMEOUT's hold on it: methods of
    request.Request, on its fields."""

    __slots__ = ()

    # --- REQUEST_TIMEOUT (sync) --------------------------------------------

    def claim(self, by: str) -> bool:
        """Either the request's own thread claims the answer (it is about to
        send its first bytes) or the watchdog does (it answers 504): never
        both. Once the app's, it stays the app's."""
        with CLAIMS:
            if self.claimed_by is None:
                self.claimed_by = by
            return self.claimed_by == by

    def answering(self) -> bool:
        """Whether this thread may send the next part: not past
        REQUEST_TIMEOUT (cut, or answered 504 already)."""
        if self.expired_at is not None:
            return False
        return self.claimed_by == "app" or self.claim("app")

    @property
    def expired(self) -> bool:
        return self.expired_at is not None

    def elapsed(self, now: float) -> float:
        since = self.since
        return self.used + (now - since if since is not None else 0.0)

    def stop_clock(self) -> None:
        if not self.watched:
            return
        since = self.since
        if since is not None:
            self.used += monotonic() - since
            self.since = None

    def unwatch(self) -> None:
        if self.watched:
            self.watched = False
            self.serve.running.pop(get_ident(), None)

    def let_go(self) -> None:
        """The app takes its WebSocket's connection: REQUEST_TIMEOUT lets the
        request go, unless it has answered 504 on it already."""
        if not self.claim("app"):
            raise BrokenPipeError(f"{self.what}: answered 504 already, past REQUEST_TIMEOUT")
        self.stop_clock()
        self.unwatch()

    # --- the body -----------------------------------------------------------

    def finish(self, result):
        """The app has returned its answer's body: what uWSGI is to send."""
        if (self.rare or self.chunked is not False or not self.watched
                or self.environ.get("CONTENT_LENGTH", "") not in ("", "0")):
            return self._finish(result)
        # The usual answer: made whole (a list, a file), or with a
        # Content-Length. Its first part is made here, under the clock: an
        # answer that is all in it leaves as a list, with nothing left to
        # watch; any other's parts are watched as uWSGI asks for them.
        if isinstance(result, (list, tuple)) or (self.files and self._file(result)):
            parts = result
        else:
            iterator = iter(result)
            try:
                first = next(iterator, None)
            except BaseException:
                self.stop_clock()
                self.unwatch()
                close(result)
                raise
            try:
                whole = first is None or len(first) >= int(self.length)
            except (TypeError, ValueError):
                whole = False
            if not whole:
                self.stop_clock()
                return self._watched(result, iterator, first, True)
            # All of it: the rest is not asked for (PEP 3333 lets a server stop).
            parts = [first] if first is not None else []
            method = getattr(result, "close", None)
            if method is not None:
                method()
        CLAIMS.acquire()
        claimed = self.claimed_by
        if claimed is None:
            self.claimed_by = claimed = "app"
        CLAIMS.release()
        self.serve.running.pop(get_ident(), None)
        if claimed == "app":
            return parts
        if parts is result:
            close(result)
        return []  # answered 504 already

    def _file(self, result) -> bool:
        return any(result is given for given in self.files)

    def _finish(self, result):
        """finish(), for the rarer answers: one refused, a stream, a request
        with a body left to read, an answer that holds the spool or a slot
        until it is sent, or gevent's (no watchdog)."""
        self.stop_clock()
        self._rare()
        environ = self.environ
        body_left = environ.get("CONTENT_LENGTH", "") not in ("", "0") and "wsgi.input" in environ
        if self.refused is not None:
            self.unwatch()
            close(result)
            if body_left:
                rest_of_body(environ)
            return [self.refused.body]
        if self.chunked is not False:
            # A stream, or an answer whose start_response comes with its
            # first part: the app's generator may still read the body.
            self.unread = body_left
            self.body = result
            return self
        if isinstance(result, (list, tuple)) or (self.files and self._file(result)):
            # All of it is made: what is left is uWSGI's to send (a file,
            # from an offload thread), at the client's pace.
            if self.watched:
                self.unwatch()
                if not self.claim("app"):
                    close(result)
                    return []  # answered 504 already
            if body_left:
                rest_of_body(environ)
        elif body_left:
            if self.length is not None:
                rest_of_body(environ)  # made whole before it is sent
            else:
                self.unread = True
        if self.spooled or self.unread or self.slot is not None:
            # What it holds is given back when uWSGI closes it.
            self.body = result
            return self
        if self.watched:
            return self._watched(result, iter(result), None, True)
        return result

    def __iter__(self):
        if self.chunked is not False:
            self.parts = streams.flow(self, iter(self.body))
        elif self.watched:
            self.parts = self._watched(self.body, iter(self.body), None, False)
        else:
            return iter(self.body)
        return self.parts

    def _watched(self, body, iterator, first, closing: bool):
        """A made answer's parts under REQUEST_TIMEOUT's clock (`first`, if
        not None, made already): until the first part is sent it counts from
        the request's arrival; from then on it counts the wait for each next
        part (a silence), so an answer that keeps sending is never cut,
        however long it lasts. Not while uWSGI writes to a slow client,
        which send timeouts bound instead. `closing`: the body is closed
        here (the request is not uWSGI's to close)."""
        stalls = self.rare and self.slot is not None and self.stalls
        try:
            while True:
                if first is None:
                    self.since = monotonic()
                    try:
                        data = next(iterator)
                    except StopIteration:
                        return
                    finally:
                        self.used += monotonic() - self.since
                        self.since = None
                else:
                    data, first = first, None
                if not self.answering():
                    return  # past REQUEST_TIMEOUT: cut, or answered 504 already
                if stalls and outbound.stalled(self.fd):
                    self.stopped_reading()
                    return
                yield data
                self.used = 0.0
        finally:
            if closing:
                close(body)
            self.unwatch()

    def stopped_reading(self) -> None:
        log(f"{self.what}: nginx took nothing of this stream for {outbound.STALLED_SECONDS} s, its reader "
            "has stopped: ended, and its thread freed")

    def close(self) -> None:
        """uWSGI has sent what it will of the answer: the rest of the
        request's body is read, and what the answer held is given back."""
        serve = self.serve
        try:
            if self.unread:
                self.unread = False
                rest_of_body(self.environ)
            if self.parts is not None:
                self.parts.close()
                self.parts = None  # it holds the request: no cycle left
            close(self.body)
        finally:
            self.unwatch()
            if self.spooled:
                serve.spool.written(self.spooled, serve.worker_id())
                self.spooled = 0
            self.give_back()

    def give_back(self) -> None:
        """The client's share of threads, if the answer took a slot of it."""
        if self.rare and self.slot is not None:
            self.serve.share.give_back(self.slot)
            self.slot = None
