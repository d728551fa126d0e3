"""Uploads as users send them: a form with a file, through `requests`. A file
of exactly MAX_BODY_SIZE gets in (the form's own bytes are allowed for);
ordinary uploads log no warning; a body the app never reads gets the app's
own answer, never a 502; a stream that reads the upload gets all of it;
an app limit a MAX_BODY_SIZE set would cut short is named at start."""

from __future__ import annotations

import collections
import hashlib
import os

import pytest
import requests

from containers import ContainerFactory
from helpers import share_with_container

MIB = 1 << 20
# layout.FORM_ALLOWANCE: what nginx admits above MAX_BODY_SIZE (10m here).
ALLOWANCE = 64 * 1024

APP = """\
import hashlib

from flask import Flask, Response, abort, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index():
    return "uploads"


@app.post("/upload")
def upload():
    data = request.files["file"].read()
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest(), "note": request.form["note"]}


@app.get("/report")
def report():
    return "a page that takes no POST"


@app.post("/private")
def private():
    abort(401)  # before anything reads the body, as a login check does


@app.post("/feed")
def feed():
    def lines():
        for n in range(500):
            yield f"line {n}\\n"
    return Response(lines(), mimetype="text/plain")


@app.post("/echo")
def echo():
    def chunks():
        while chunk := request.stream.read(65536):
            yield chunk
    return Response(stream_with_context(chunks()), mimetype="application/octet-stream")


@app.post("/transform")
def transform():
    # The shape that works for an upload of any size: the body read first,
    # then the answer streamed.
    data = request.get_data()

    def chunks():
        for start in range(0, len(data), 65536):
            yield data[start:start + 65536]
    return Response(chunks(), mimetype="application/octet-stream")
"""

# The same app with the limit the tutorials set, above MAX_BODY_SIZE.
BIG_LIMIT = "from app import app\n\napp.config['MAX_CONTENT_LENGTH'] = 50 * 1024 * 1024\n"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("form-uploads")
    app = root / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    (app / "big.py").write_text(BIG_LIMIT)
    root.chmod(0o755)
    share_with_container(app)
    return app


@pytest.fixture(scope="module")
def server(image, app_dir):
    """One server with the defaults (MAX_BODY_SIZE=10m) for the module: its
    tests only send it requests."""
    factory = ContainerFactory(image)
    container = factory.serving(docker_args=("-v", f"{app_dir}:/app:ro"))
    yield container
    factory.cleanup()


def url(container, path: str) -> str:
    return f"http://127.0.0.1:{container.port}{path}"


def send_form(container, path: str, data: bytes, note: str = "holiday") -> requests.Response:
    return requests.post(url(container, path), files={"file": ("photo.jpg", data, "image/jpeg")},
                         data={"note": note, "csrf_token": os.urandom(32).hex()}, timeout=60)


def test_a_file_of_exactly_max_body_size_reaches_the_app_and_one_past_the_allowance_gets_413(server):
    data = os.urandom(10 * MIB)
    note = os.urandom(8).hex()
    resp = send_form(server, "/upload", data, note)
    assert resp.status_code == 200, (resp.status_code, server.logs())
    assert resp.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest(), "note": note}
    try:
        over = send_form(server, "/upload", os.urandom(10 * MIB + ALLOWANCE + 100 * 1024)).status_code
    except requests.ConnectionError:
        over = None  # nginx may close before the client has sent it all
    assert over == 413, server.logs()


def test_ordinary_uploads_log_no_warning(server):
    for size in [100_000] * 5 + [1_000_000] * 5:
        data = os.urandom(size)
        resp = send_form(server, "/upload", data)
        assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest(), server.logs()
    logs = server.logs()
    # The old server logged "a client request body is buffered to a temporary
    # file" at [warn], once per upload.
    assert "buffered to a temporary file" not in logs, logs
    assert "[warn]" not in logs, logs


def test_a_body_the_app_never_reads_gets_the_apps_answer_never_502(server, figure):
    statuses: collections.Counter = collections.Counter()
    for path, size, times in [("/report", 100_000, 30), ("/private", 100_000, 30),
                              ("/report", 5_000_000, 5), ("/private", 5_000_000, 5)]:
        data = os.urandom(size)
        for _ in range(times):
            statuses[(path, size, send_form(server, path, data).status_code)] += 1
    figure("502s of 70 forms to routes that never read them", str(sum(
        n for (_, _, status), n in statuses.items() if status == 502)))
    assert statuses == {("/report", 100_000, 405): 30, ("/private", 100_000, 401): 30,
                        ("/report", 5_000_000, 405): 5, ("/private", 5_000_000, 401): 5}, statuses


def test_a_stream_that_never_reads_the_body_is_sent_whole(server, figure):
    expected = "".join(f"line {n}\n" for n in range(500))
    data = os.urandom(100_000)
    answers = [send_form(server, "/feed", data) for _ in range(10)]
    figure("502s of 10 streams answering forms they never read",
           str(sum(resp.status_code == 502 for resp in answers)))
    for resp in answers:
        assert (resp.status_code, resp.text) == (200, expected), (resp.status_code, server.logs())
        assert "content-length" not in resp.headers, resp.headers


def echoed(container, data: bytes, timeout: float = 60, path: str = "/echo") -> tuple[int, int, str]:
    """(status, length, sha256) of what `path` streamed back of `data`."""
    resp = requests.post(url(container, path), data=data, timeout=timeout,
                         headers={"Content-Type": "application/octet-stream"})
    return resp.status_code, len(resp.content), hashlib.sha256(resp.content).hexdigest()


def test_a_stream_that_reads_the_upload_as_it_goes_receives_all_of_it(server):
    # Uploads both (10000 bytes and more: @flaskbox_app_upload): the read at
    # the stream's end (body.py) must leave the body to the generator.
    for size in (50_000, 200_000):
        data = os.urandom(size)
        assert echoed(server, data) == (200, size, hashlib.sha256(data).hexdigest()), server.logs()


def test_a_large_upload_read_first_is_streamed_back_whole(server):
    # Streaming the answer while still reading the body works only up to
    # what the socket holds (~256 KB, the test above): nginx closes its copy
    # of the body once the answer begins (docs/your-app.md says so). Read
    # first, then stream: any size.
    data = os.urandom(3 * MIB)
    got = echoed(server, data, path="/transform")
    assert got == (200, len(data), hashlib.sha256(data).hexdigest()), (got, server.logs()[-3000:])


def test_an_app_limit_above_a_max_body_size_set_is_named_at_start(containers, app_dir):
    # Not set, MAX_BODY_SIZE gives way to the app's limit (test_app_body_limit.py).
    c = containers.serving(env={"APP_MODULE": "big:app", "MAX_BODY_SIZE": "10m"},
                           docker_args=("-v", f"{app_dir}:/app:ro"))
    logs = c.logs()
    assert "the app's MAX_CONTENT_LENGTH (52428800 bytes) is above MAX_BODY_SIZE (10m, as set)" in logs, logs
    assert "raise MAX_BODY_SIZE to 50m, or unset it to let the app's limit decide" in logs, logs
