"""A reload lets work in flight finish: at SIGHUP the new code serves every
new request at once, while the downloads and streams already under way
(a static file, a spooled response, a generated one with a length, a file
from send_file, a streamed CSV export; over HTTP/1.1 and HTTP/2) go on to
their end on the old code, within RELOAD_GRACE. An event stream that never
ends is ended cleanly a second before RELOAD_GRACE runs out, and counted. Past the
grace, what is still in flight is cut where the client and the access log
see it."""

import hashlib
import shutil
import time
import uuid

from containers import SlowRequest
from downloads import MB, Download
from helpers import CERT, KEY, REPO, docker, free_port, share_with_container

FIXTURE_APP = REPO / "tests" / "fixture_app"
VERSION = '''

@app.get("/version")
def version():
    return "{token}\\n"
'''


def fixture_copy(tmp_path, token: str):
    """The fixture app, mounted rather than built in, so that a test can
    change its code; a static folder with a large file of its own."""
    app = tmp_path / "app"
    shutil.copytree(FIXTURE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    write_version(app, token)
    (app / "public").mkdir()
    (app / "public" / "big.bin").write_bytes(bytes(range(256)) * (8 * MB // 256))
    share_with_container(tmp_path)
    return app


def write_version(app, token: str) -> None:
    source = app / "app.py"
    code = source.read_text().split('\n\n@app.get("/version")')[0]
    source.write_text(code + VERSION.format(token=token))
    share_with_container(source)


def serve(containers, app, certs, **env):
    tls_port = free_port()
    c = containers.run(env={"TLS_CERT": CERT, "TLS_KEY": KEY, "TLS_PORT": str(tls_port),
                            "STATIC_URL": "/public", "STATIC_PATH": "/app/public", **env},
                       docker_args=("-v", f"{app}:/app:ro", "-v", f"{certs}:/etc/tls:ro"))
    c.tls_port = tls_port
    c.wait_http("/version")
    return c


def wait_started(container, downloads) -> None:
    container.wait_until(lambda: all(download.received() > 0 for download in downloads),
                         "every download under way", timeout=30)


def test_downloads_in_flight_finish_on_the_old_code_while_new_requests_get_the_new(containers, tmp_path,
                                                                                    certs, figure):
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    app = fixture_copy(tmp_path, old)
    # Long enough for every download (8 s); the endless event stream holds
    # the old code to its end, less a second.
    grace = 15
    c = serve(containers, app, certs, RELOAD_GRACE=str(grace))
    plain, tls = f"http://127.0.0.1:{c.port}", f"https://127.0.0.1:{c.tls_port}"
    rows = 40_000  # 3.2 MB in batches of 1000 rows, one every 0.2 s: 8 s
    downloads = {
        "static, HTTP/1.1": Download(f"{plain}/public/big.bin", rate=MB),
        "static, HTTP/2": Download(f"{tls}/public/big.bin", rate=MB, http2=True),
        "spooled, HTTP/2": Download(f"{tls}/blob/8", rate=MB, http2=True),
        "generated with a length": Download(f"{plain}/big/8", rate=MB),
        "send_file": Download(f"{plain}/blob-file/8", rate=MB),
        "CSV export, HTTP/1.1": Download(f"{plain}/export/{rows}?every=0.2"),
        "CSV export, HTTP/2": Download(f"{tls}/export/{rows}?every=0.2", http2=True),
    }
    events = Download(f"{plain}/events")
    for download in [*downloads.values(), events]:
        download.start()
    wait_started(c, [*downloads.values(), events])
    write_version(app, new)
    hupped = time.monotonic()
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: c.request("/version").text == f"{new}\n", "the new code serving", timeout=30)
    switched = time.monotonic() - hupped
    still_running = [name for name, download in downloads.items() if download.running()]
    for download in downloads.values():
        download.wait()
    # The endless event stream goes on past the downloads, to the grace's
    # end less a second, and ends cleanly then.
    assert events.running(), c.logs()
    events.wait(timeout=30)
    events_ended = time.monotonic() - hupped
    figure("SIGHUP to the new code serving, seconds", f"{switched:.2f}")
    figure("SIGHUP to the old code's event stream ended, seconds", f"{events_ended:.2f}")
    figure("downloads still under way when the new code served", f"{len(still_running)} of {len(downloads)}")
    for name, download in downloads.items():
        assert download.whole and download.status == 200, f"{name}: {download}\n{c.logs()[-4000:]}"
    assert switched < 5, c.logs()
    assert len(still_running) == len(downloads), still_running
    assert downloads["static, HTTP/2"].version == "2"
    assert downloads["static, HTTP/1.1"].body == (app / "public" / "big.bin").read_bytes()
    for name in ("spooled, HTTP/2", "send_file"):
        download = downloads[name]
        assert download.sha256 == download.answer_headers["x-sha256"], name
    assert len(downloads["generated with a length"].body) == 8 * MB
    for name in ("CSV export, HTTP/1.1", "CSV export, HTTP/2"):
        assert downloads[name].sha256 == export_digest(rows), name
    assert events.whole and b"data: 0" in events.body, events
    assert grace - 2 < events_ended < grace + 2, c.logs()
    logs = c.logs()
    assert "ending the 1 event stream(s) still open, cleanly (their last chunk): the reload's budget " \
           f"(RELOAD_GRACE {grace} s) is nearly spent" in logs, logs
    assert f"the 1 event stream(s) open at the reload (RELOAD_GRACE {grace} s): 0 finished, 1 ended " \
           "unfinished" in logs, logs
    c.wait_until(lambda: "the old code (generation 1) has finished its requests and stopped" in c.logs(),
                 "the old code stopped once its last download ended")
    lines = [line for line in c.stdout_lines() if "/version" not in line and "/-/" not in line]
    assert lines and all(line.endswith("done=ok") for line in lines), "\n".join(lines)


def test_a_download_whose_request_sent_bytes_that_are_not_utf8_still_finishes(containers, tmp_path, certs):
    # uWSGI's stats carry a running request's headers as they came; one such
    # byte once made them unreadable, and the reload took the old code for
    # idle and cut its downloads at once (test_uwsgi_stats.py).
    old = uuid.uuid4().hex
    app = fixture_copy(tmp_path, old)
    c = serve(containers, app, certs)
    rows = 20_000  # 1.6 MB in batches of 1000 rows, one every 0.25 s: 5 s
    export = Download(f"http://127.0.0.1:{c.port}/export/{rows}?every=0.25",
                      head=b"X-Legacy: caf\xe9\r\nUser-Agent: old\x01client\r\n").start()
    wait_started(c, [export])
    write_version(app, uuid.uuid4().hex)
    docker("kill", "-s", "HUP", c.name)
    export.wait()
    assert export.whole and export.status == 200, f"{export}\n{c.logs()[-4000:]}"
    assert export.sha256 == export_digest(rows)
    c.wait_until(lambda: "the old code (generation 1) has finished its requests and stopped" in c.logs(),
                 "the old code stopped once the export ended")
    assert "past their budget" not in c.logs() and "after RELOAD_GRACE" not in c.logs()


def export_digest(rows: int) -> str:
    """What /export/<rows> sends, row by row, as the fixture app writes it."""
    sha = hashlib.sha256()
    for row in range(rows):
        sha.update(f"{row},customer-{row % 977},{row * 37 % 100003},{'x' * 40}\n".encode())
    return sha.hexdigest()


def test_past_the_reload_grace_what_is_still_in_flight_is_cut_visibly(containers, tmp_path, certs, figure):
    app = fixture_copy(tmp_path, uuid.uuid4().hex)
    c = serve(containers, app, certs, RELOAD_GRACE="2")
    plain, tls = f"http://127.0.0.1:{c.port}", f"https://127.0.0.1:{c.tls_port}"
    # Exports that would take a minute.
    slow = [Download(f"{plain}/export/100000?every=0.5&batch=500"),
            Download(f"{tls}/export/100000?every=0.5&batch=500", http2=True)]
    for download in slow:
        download.start()
    wait_started(c, slow)
    hupped = time.monotonic()
    docker("kill", "-s", "HUP", c.name)
    for download in slow:
        download.wait(timeout=30)
    elapsed = time.monotonic() - hupped
    figure("RELOAD_GRACE=2: exports in flight cut after, seconds", f"{elapsed:.2f}")
    for download in slow:
        assert download.cut and download.status == 200, f"{download}\n{c.logs()[-3000:]}"
    assert 2 <= elapsed < 8, c.logs()
    c.wait_until(lambda: "still in flight after RELOAD_GRACE (2s): the old code stops now" in c.logs(),
                 "the cut in the log")
    c.wait_until(lambda: sum("GET /export/" in line and line.endswith("done=cut")
                             for line in c.stdout_lines()) == 2, "both cuts in the access log")


def test_an_old_master_killed_while_it_retires_is_reported_as_a_cut(containers, fixture_image):
    # The old code's uWSGI master killed while its request is in flight:
    # that request is cut (502), and the log says so and that the container
    # goes on. Before, it said the old code "has finished its requests".
    c = containers.serving(image=fixture_image["image"])
    old = c.pids("flaskbox uWSGI master")
    assert len(old) == 1, c.processes()
    slow = reloaded_with_a_request_in_flight(c)
    c.signal("KILL", old[0])
    assert slow.join() == 502, c.logs()
    c.wait_until(lambda: "uWSGI master (generation 1) ended before its requests did" in c.logs(),
                 "the cut reported")
    assert "the old code (generation 1) has finished its requests" not in c.logs()
    assert c.request("/").status == 200 and c.running()

def reloaded_with_a_request_in_flight(c) -> SlowRequest:
    """A 6 s request on the old code, then a reload: the request. The old
    code retires as the new one serves (its watch is the arbiter's own)."""
    slow = SlowRequest(c, 6)
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the reload")
    return slow
