"""A response the app's side cuts short (an exception mid-stream, a
download that fails before its last byte) reaches the client as a cut, and
the access log says so (`done=cut`, "complete": false) beside the status it
began with; a whole one says `done=ok`. So does one flaskbox itself ends
early: past the stop's budget, or when the disk its spool is on fills up
(the timeout's and a reload's cuts: test_request_timeout.py,
test_reload_grace.py). nginx's own completion flag sees
only a client that left (tests/test_slow_downloads.py), so nginx.conf also
checks what it received from the app: all of a Content-Length, and a framed
stream's padded length (flaskbox/request/framing.py)."""

import http.client
import json
import sys
import uuid

import pytest

from downloads import MB, Download
from helpers import CERT, KEY, REPO, docker, free_port

sys.path.insert(0, str(REPO / "lib"))
from flaskbox.request import framing  # noqa: E402


def fetch(container, path: str, method: str = "GET") -> tuple[int, bytes, str, str]:
    """status, body, how it ended ('complete' or the error a client sees),
    and the request id the client chose for it."""
    request_id = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", container.port, timeout=30)
    try:
        conn.request(method, path, headers={"X-Request-ID": request_id})
        resp = conn.getresponse()
        try:
            return resp.status, resp.read(), "complete", request_id
        except http.client.IncompleteRead as exc:
            return resp.status, exc.partial, "IncompleteRead", request_id
    finally:
        conn.close()


def access_line(container, request_id: str) -> str:
    return container.wait_until(
        lambda: next((line for line in container.stdout_lines() if request_id in line), None),
        f"the access log line of request {request_id}")


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving()


@pytest.mark.parametrize("path", ["/stream/3?every=0.05&fail=1", "/stream/4?every=0.05&sized=1&fail=1"],
                         ids=["stream", "content-length"])
def test_a_response_cut_by_the_app_is_logged_as_cut(server, path):
    status, body, ending, request_id = fetch(server, path)
    assert status == 200 and ending == "IncompleteRead", (ending, body)
    assert body.startswith(b"line 0 ") or body.startswith(b"line 0\n"), body
    line = access_line(server, request_id)
    assert " 200 " in line and line.endswith(" done=cut"), line


@pytest.mark.parametrize("path", ["/stream/0?every=0", "/stream/1?every=0", "/stream/37?every=0",
                                  "/stream/4?every=0.05&sized=1", "/text", "/"])
def test_a_whole_response_is_logged_as_ok(server, path):
    status, body, ending, request_id = fetch(server, path)
    assert status == 200 and ending == "complete", (ending, body)
    line = access_line(server, request_id)
    assert " 200 " in line and line.endswith(" done=ok"), line


@pytest.mark.parametrize("path", ["/stream/3?every=0", "/static/proof.txt"])
def test_head_is_whole_without_a_body(server, path):
    status, body, ending, request_id = fetch(server, path, method="HEAD")
    assert status == 200 and body == b"" and ending == "complete"
    assert access_line(server, request_id).endswith(" done=ok")


def test_the_json_log_says_complete_false_for_a_cut(module_containers):
    c = module_containers.serving(env={"LOG_FORMAT": "json"})
    cut, whole = fetch(c, "/stream/3?every=0.05&fail=1"), fetch(c, "/stream/3?every=0")
    assert (cut[2], whole[2]) == ("IncompleteRead", "complete")
    records = {rid: json.loads(access_line(c, rid)) for rid in (cut[3], whole[3])}
    assert records[cut[3]]["status"] == 200 and records[cut[3]]["complete"] is False
    assert records[whole[3]]["complete"] is True


@pytest.mark.parametrize("sent", [0, 1, 5, 7, 993, 994, 999, 1000, 123456])
def test_a_stream_that_ends_well_is_padded_to_a_whole_number(sent):
    last = framing.last_chunk(sent)
    assert (sent + len(last)) % framing.WHOLE_EVERY == 0
    # A last chunk with one extension made of token characters, as RFC 9112
    # 7.1.1 has it, and no trailer.
    assert last.startswith(b"0;") and last.endswith(b"\r\n\r\n") and last.count(b"\r\n") == 2
    assert last[2:-4].isalnum()


def cut_and_logged_cut(container, download, path: str) -> None:
    assert download.cut and download.status == 200, f"{download}\n{container.logs()[-3000:]}"
    line = next((line for line in container.stdout_lines() if f"GET {path} " in line), None)
    assert line is not None and line.endswith("done=cut"), f"{line}\n{download}\n{container.logs()[-3000:]}"


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
def test_a_download_past_the_stops_budget_is_cut_visibly(containers, fixture_image, certs, http2):
    tls_port = free_port()
    c = containers.serving(image=fixture_image["image"],
                           env={"TLS_CERT": CERT, "TLS_KEY": KEY, "TLS_PORT": str(tls_port)},
                           docker_args=("-v", f"{certs}:/etc/tls:ro"))
    # 16 MB at 1 MB/s: far past the stop's 5 s drain.
    url = f"https://127.0.0.1:{tls_port}/blob/16" if http2 else f"http://127.0.0.1:{c.port}/blob/16"
    download = Download(url, rate=MB, http2=http2).start()
    c.wait_until(lambda: download.received() > 0, "the download under way")
    docker("stop", c.name, timeout=30)
    download.wait(timeout=30)
    cut_and_logged_cut(c, download, "/blob/16")


@pytest.mark.slow
def test_a_download_whose_spool_disk_fills_up_is_cut_visibly(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"], docker_args=("--tmpfs", "/tmp:size=64m"))
    # Made a MB every 0.3 s for a client at 200 KB/s: nginx spools it to
    # RUNTIME_DIR as it comes, while something else fills that disk.
    download = Download(f"http://127.0.0.1:{c.port}/big/12?every=0.3", rate=200 << 10).start()
    c.wait_until(lambda: download.received() > 0, "the download under way")
    c.exec("bash", "-c", "head -c 100m /dev/zero > /tmp/filler")
    download.wait(timeout=120)
    cut_and_logged_cut(c, download, "/big/12?every=0.3")
    assert "No space left on device" in c.logs()
