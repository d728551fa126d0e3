"""The disk budget for spooled responses, in process: a response too large
for memory is admitted only when it fits the space left, counting what
other workers are still writing; a file from wsgi.file_wrapper goes back to
uWSGI untouched, never spooled (noted on its request by thread, or, with
gevent, by a wrapper of the request's own). Proven against a real container in
test_temp_files.py."""

import os
from types import SimpleNamespace

from flaskbox.request import serve, spool
from flaskbox.request.body import gevent_wrapper


def environ(**extra) -> dict:
    return {"REQUEST_METHOD": "GET", "REQUEST_URI": "/x", **extra}


def ignore_start(status, headers, exc_info=None):
    return lambda data: None


class FakeDisk(spool.Spool):
    """A Spool over a file system whose free space the test sets."""

    def __init__(self, space: int, free: int):
        self.free_now = free
        super().__init__("/", space, workers=2)

    def free(self) -> int:
        return self.free_now


MB = 1 << 20


def test_the_spool_admits_what_fits_counting_what_is_still_to_be_written():
    disk = FakeDisk(space=100 * MB, free=1000 * MB)
    assert disk.admits(60 * MB, worker=1)
    # Nothing on disk yet, but 60 MB is on its way: 60 more do not fit.
    assert not disk.admits(60 * MB, worker=2)
    assert disk.admits(30 * MB, worker=2)
    # Written: now the disk itself shows it.
    disk.written(60 * MB, worker=1)
    disk.free_now -= 60 * MB
    assert not disk.admits(20 * MB, worker=1) and disk.admits(5 * MB, worker=1)


def test_small_responses_never_count():
    disk = FakeDisk(space=0, free=0)
    assert disk.admits(spool.Spool.MEMORY, worker=1)


def test_a_new_worker_clears_what_its_predecessor_left_pending():
    disk = FakeDisk(space=100 * MB, free=1000 * MB)
    disk.pending[1] = 90 * MB  # a worker killed mid-response
    disk.pid = -1  # this process is a new worker with the same id
    assert disk.admits(90 * MB, worker=1)


def test_a_spooled_body_is_counted_as_written_once_closed():
    disk = FakeDisk(space=100 * MB, free=1000 * MB)
    large = b"x" * (spool.Spool.MEMORY + 1)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(large)))])
        return [large]

    body = serve.Serve(app, 5, spool=disk, worker_id=lambda: 1)(environ(), ignore_start)
    assert list(body) == [large] and disk.pending[1] == len(large)
    body.close()
    assert disk.pending[1] == 0


def test_a_file_from_wsgi_file_wrapper_goes_back_to_uwsgi_untouched():
    handed = object()

    def app(environ, start_response):
        given = environ["wsgi.file_wrapper"](open(os.devnull, "rb"))
        start_response("200 OK", [("Content-Length", "5000000")])
        return given

    answered = {}
    body = serve.Serve(app, 5, spool=FakeDisk(space=100 * MB, free=1000 * MB))(
        environ(**{"wsgi.file_wrapper": lambda filelike, *args: handed}),
        lambda status, headers, exc_info=None: answered.update(headers=dict(headers)))
    # Not spooled: uWSGI sends it from an offload thread, at the client's pace.
    assert body is handed and answered["headers"]["X-Accel-Buffering"] == "no"


def test_gevents_file_wrapper_notes_the_files_on_its_own_request():
    """gevent's greenlets share a thread, so that no registry by thread
    finds their request: each request's wrapper notes its own files."""
    handed = object()
    first, second = SimpleNamespace(files=()), SimpleNamespace(files=())
    wrapper = gevent_wrapper(lambda filelike, *args: handed, first)
    gevent_wrapper(lambda filelike, *args: handed, second)
    assert wrapper(open(os.devnull, "rb")) is handed
    assert first.files == [handed] and second.files == []
