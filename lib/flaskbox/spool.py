"""Responses that leave a worker faster than their client takes them: a
large one spooled to RUNTIME_DIR by nginx within RESPONSE_SPACE (Spool,
Spooled), and a file from wsgi.file_wrapper handed back to uWSGI untouched,
which sends it from an offload thread (FileResponses). Either way the
worker is free at once, however slow the client."""

from __future__ import annotations

import os

from .layout import RESPONSE_MEMORY_BYTES


def close_body(body) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class Spool:
    """The disk nginx may spool responses to (RESPONSE_SPACE). nginx cannot
    count what its buffered responses take together, and it unlinks each
    file as soon as it makes it, so the file system is the one true count:
    a large response is admitted if the space used on it since the start,
    plus what admitted responses still have to write (kept per worker in
    memory the workers share, so that a burst of them all at once is
    counted), plus its own length, fits. Responses that fit in nginx's
    memory buffers never touch disk and are not counted."""

    MEMORY = RESPONSE_MEMORY_BYTES

    def __init__(self, path: str, space: int, workers: int):
        import multiprocessing
        self.path = path
        self.space = space
        self.free_at_start = self.free()
        # Bytes admitted and not yet handed to nginx, by uWSGI worker id; a
        # worker's own entry is cleared when it starts, so a worker killed
        # mid-response leaves nothing counted behind.
        # The fork context: the workers are forks of this process, and no
        # semaphore is left to a tracker process (Python 3.14 defaults to
        # forkserver, which would start one).
        self.pending = multiprocessing.get_context("fork").Array("q", workers + 1)
        self.pid: int | None = None

    def free(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def admits(self, length: int, worker: int) -> bool:
        if length <= self.MEMORY:
            return True
        with self.pending.get_lock():
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.pending[worker] = 0
            used = max(self.free_at_start - self.free(), 0)
            if used + sum(self.pending) + length > self.space:
                return False
            self.pending[worker] += length
            return True

    def written(self, length: int, worker: int) -> None:
        with self.pending.get_lock():
            self.pending[worker] = max(self.pending[worker] - length, 0)


class Spooled:
    """A body admitted to the spool: once uWSGI has written it all (and
    closes it), what it took is on disk, and no longer pending."""

    def __init__(self, body, done):
        self.body = body
        self.done = done

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            close_body(self.body)
        finally:
            self.done()


class FileResponses:
    """Notes the file objects the app hands to wsgi.file_wrapper (Flask's
    send_file does), so that such a body goes back to uWSGI untouched:
    uWSGI then sends it with sendfile from an offload thread, and the worker
    is free at once, however slow the client."""

    def __init__(self, environ):
        self.wrapper = environ.get("wsgi.file_wrapper")
        self.given: list = []
        if self.wrapper is not None:
            environ["wsgi.file_wrapper"] = self.wrap

    def wrap(self, filelike, *args, **kwargs):
        wrapped = self.wrapper(filelike, *args, **kwargs)
        self.given.append(wrapped)
        return wrapped

    def holds(self, body) -> bool:
        return any(body is given for given in self.given)


def file_given(environ) -> bool:
    """Whether this request's app handed a file to wsgi.file_wrapper (to the
    FileResponses serve.py put there)."""
    responses = getattr(environ.get("wsgi.file_wrapper"), "__self__", None)
    return isinstance(responses, FileResponses) and bool(responses.given)
