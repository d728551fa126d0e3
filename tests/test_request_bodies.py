"""Request bodies reach the app whole, however the client sends them: with a
Content-Length or chunked (curl, requests with a generator, http.client with
encode_chunked), plain, urlencoded or multipart; MAX_BODY_SIZE applies to all.

nginx receives a chunked body in full and passes it on with a Content-Length;
before, the app got it empty and the client a 200."""

import hashlib
import http.client
import json
import os
import subprocess
import uuid

import pytest
import requests

from flaskbox.layout import body_limit

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving(env={"MAX_BODY_SIZE": "1m"})


def url(server, path="/echo"):
    return f"http://127.0.0.1:{server.port}{path}"


def pieces(data: bytes, size: int = 7000):
    """A generator: requests sends such a body chunked (no length known)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_curl_chunked_upload_arrives_whole(server, tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    out = subprocess.run(["curl", "-sS", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: "
                          "application/octet-stream", "--data-binary", f"@{path}", url(server)],
                         capture_output=True, check=True, timeout=30).stdout
    seen = json.loads(out)
    assert seen["length"] == len(data) and seen["sha256"] == hashlib.sha256(data).hexdigest()


def test_requests_generator_body_arrives_whole(server):
    data = os.urandom(200_000)
    resp = requests.post(url(server), data=pieces(data), timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_http_client_encode_chunked_arrives_whole(server):
    data = os.urandom(123_457)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("PUT", "/echo", body=pieces(data), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"})
    resp = conn.getresponse()
    seen = json.loads(resp.read())
    assert resp.status == 200
    assert seen["length"] == len(data) and seen["sha256"] == hashlib.sha256(data).hexdigest()


def test_chunked_urlencoded_form_is_parsed(server):
    token = uuid.uuid4().hex
    form = f"name={token}&note={'n' * 5000}".encode()
    resp = requests.post(url(server), data=pieces(form, 1000),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert resp.json()["form"] == {"name": len(token), "note": 5000}


def test_chunked_multipart_upload_is_parsed(server):
    data = os.urandom(250_000)
    prepared = requests.Request("POST", url(server), files={"file": ("a.bin", data)},
                                data={"title": "report"}).prepare()
    # The same multipart body, sent chunked as a streaming client would.
    body = prepared.body
    resp = requests.post(url(server), data=pieces(body), timeout=30,
                         headers={"Content-Type": prepared.headers["Content-Type"]})
    seen = resp.json()
    assert seen["files"] == {"file": hashlib.sha256(data).hexdigest()}
    assert seen["form"] == {"title": 6}


def test_max_body_size_applies_to_chunked_bodies(server):
    # nginx admits a form's own bytes above MAX_BODY_SIZE (layout.body_limit).
    resp = requests.post(url(server), data=pieces(b"x" * (body_limit(LIMIT) + 1)), timeout=30)
    assert resp.status_code == 413
    just_fits = requests.post(url(server), data=pieces(b"x" * (LIMIT - 4096)), timeout=30)
    assert just_fits.json()["length"] == LIMIT - 4096


def test_expect_100_continue_upload(server, tmp_path):
    # curl asks "Expect: 100-continue" before a large body; nginx answers it.
    data = os.urandom(900_000)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    command = ["curl", "-sS", "-H", "Expect: 100-continue", "--data-binary", f"@{path}", url(server)]
    out = subprocess.run(command, capture_output=True, check=True, timeout=30).stdout
    assert json.loads(out)["sha256"] == hashlib.sha256(data).hexdigest()
