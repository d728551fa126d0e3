"""uWSGI's stats, read whatever the clients sent (lib/flaskbox/sidecars/uwsgi_stats.py):
uWSGI copies each running request's headers into its stats unescaped but
for quotes, backslashes, tabs and line ends, so a client's Latin-1 or
control byte must not make the health check, the reload's wait or
METRICS_PORT lose sight of the pool. In process, then against a container
(the reload's side: test_reload_grace.py)."""

import json
import socket
import threading

import pytest

from flaskbox.sidecars import uwsgi_stats

# A worker in a request, as uWSGI 2.0 writes it: the header's raw bytes
# inside a JSON string.
IN_FLIGHT = (b'{"version":"2.0.31","sockets":[{"name":"/run/app.sock","queue":2}],'
             b'"workers":[{"id":1,"pid":42,"status":"busy","cores":[{"id":0,"in_request":1,'
             b'"vars":["HTTP_X_LEGACY=caf\xe9","HTTP_USER_AGENT=old\x01client\x7f",'
             b'"PATH_INFO=/caf\xc3"]}]}]}')


def test_a_request_with_bytes_that_are_not_utf8_leaves_the_stats_readable():
    with pytest.raises(ValueError):
        json.loads(IN_FLIGHT)  # what every reader did before
    stats = uwsgi_stats.parse(IN_FLIGHT)
    assert stats["sockets"][0]["queue"] == 2
    worker = stats["workers"][0]
    assert worker["status"] == "busy" and worker["pid"] == 42
    assert worker["cores"][0]["vars"][0] == "HTTP_X_LEGACY=caf\ufffd"
    assert worker["cores"][0]["vars"][1] == "HTTP_USER_AGENT=old\x01client\x7f"


def test_what_is_not_a_stats_document_is_none():
    for data in (b"", b"{", b"[1, 2]", b"null", b"HTTP/1.1 200 OK\r\n\r\n"):
        assert uwsgi_stats.parse(data) is None, data


def test_read_takes_the_whole_document_off_the_socket(tmp_path):
    path = tmp_path / "stats.sock"
    big = IN_FLIGHT.replace(b"old\x01client", b"x" * 300_000)  # several reads
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()

        def answer():
            conn, _ = server.accept()
            with conn:
                conn.sendall(big)

        thread = threading.Thread(target=answer)
        thread.start()
        stats = uwsgi_stats.read(path)
        thread.join()
    assert stats["workers"][0]["cores"][0]["vars"][1].startswith("HTTP_USER_AGENT=" + "x" * 1000)
    assert uwsgi_stats.read(tmp_path / "nothing.sock") is None


# Inside the container: the worker's status by the image's own reader, and
# whether uWSGI's raw stats carry the header's byte as it came.
PEEK = ("from flaskbox import record; from flaskbox.sidecars import uwsgi_stats; import socket\n"
        "path = str(record.runtime().stats_socket)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(path)\n"
        "raw = b''.join(iter(lambda: s.recv(65536), b''))\n"
        "print(uwsgi_stats.parse(raw)['workers'][0]['status'], b'caf\\xe9' in raw)")


def test_a_busy_worker_whose_request_sent_latin1_is_busy_not_dead(containers, fixture_image):
    # One worker, one thread: a single slow request makes the pool busy, so
    # the health check's probe waits and the stats decide.
    c = containers.run(image=fixture_image["image"], env={"UWSGI_PROCESSES": "1", "UWSGI_THREADS": "1"})
    c.wait_healthy()
    with socket.create_connection(("127.0.0.1", c.port), timeout=60) as sock:
        sock.sendall(b"GET /sleep/20 HTTP/1.1\r\nHost: localhost\r\nX-Legacy: caf\xe9\r\n"
                     b"User-Agent: old\x01client\r\nConnection: close\r\n\r\n")
        c.wait_until(lambda: c.exec("python3", "-I", "-c", PEEK).stdout.split() == ["busy", "True"],
                     "uWSGI's stats to show the request with its byte as sent", timeout=20)
        result = c.exec("healthcheck.sh")
        assert result.returncode == 0, f"{result.stderr}\n{c.logs()[-3000:]}"
        assert "busy" in result.stderr
