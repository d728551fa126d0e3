"""The image's HEALTHCHECK: a liveness check through nginx to a uWSGI worker,
which fails when the path is broken (frozen workers), never for being busy
(test_overload.py), and says why when nginx has no workers to answer."""

import json
import socket
import threading

import pytest

from fake_host import FakeHost
from flaskbox import layout
from flaskbox.sidecars import health
from helpers import docker


def health_status(container) -> str:
    return container.inspect()["State"]["Health"]["Status"]


def test_image_declares_a_healthcheck(image):
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/healthcheck.sh"]


def test_container_becomes_healthy(containers):
    # Docker runs the first check one interval after start; shorten it so the
    # test does not wait 10 s. The command is the image's own.
    c = containers.run(docker_args=("--health-interval", "1s"))
    c.wait_until(lambda: health_status(c) == "healthy", "health status 'healthy'", timeout=30)


def test_healthcheck_fails_when_workers_cannot_answer(containers):
    c = containers.run()
    c.wait_healthy()
    # Freeze every uWSGI worker: nginx is still up, but the path to a worker is
    # broken, and the check must say so.
    pids = c.pids("flaskbox uWSGI worker")
    assert len(pids) >= 1, c.logs()
    c.signal("STOP", *pids)
    try:
        result = c.exec("healthcheck.sh")
        assert result.returncode != 0
    finally:
        c.signal("CONT", *pids)
    c.wait_healthy()


# A PATH with bash and timeout and no Python: healthcheck.sh's quick probe
# can run, its full check (python3) cannot.
NO_PYTHON = "mkdir -p /tmp/no-python && ln -sf /bin/bash /usr/bin/timeout /tmp/no-python/ && "


def test_the_usual_check_needs_no_python(containers):
    """Production answering 200: bash alone says healthy, without starting
    Python's ~40 ms of CPU every 10 s beside the app; anything else (here:
    no port file where RUNTIME_DIR points) is the full check's."""
    c = containers.run()
    c.wait_healthy()
    check = "PATH=/tmp/no-python /usr/local/bin/healthcheck.sh"
    quick = c.exec("bash", "-c", NO_PYTHON + check)
    assert quick.returncode == 0, (quick.stdout, quick.stderr)
    full = c.exec("bash", "-c", NO_PYTHON + "RUNTIME_DIR=/tmp/elsewhere " + check)
    assert full.returncode == 127 and "python3" in full.stderr, (full.stdout, full.stderr)


def test_healthcheck_fails_before_the_server_starts(containers):
    c = containers.run("sleep", "60")
    result = c.exec("healthcheck.sh")
    assert result.returncode == 1
    assert "has not started" in result.stderr


def test_the_health_check_says_when_nginx_has_no_workers(tmp_path):
    runtime = layout.Runtime(tmp_path / "run")
    runtime.nginx_dir.mkdir(parents=True)
    (runtime.nginx_dir / "nginx.pid").write_text("40\n")
    children = tmp_path / "proc" / "40" / "task" / "40"
    children.mkdir(parents=True)
    (children / "children").write_text("")
    host = FakeHost(pids=40)
    host.pids_current = lambda: 40
    assert health.without_workers(runtime, host, tmp_path / "proc") == (
        "nginx has no worker processes (it could not start them: the pids limit is 40, 40 in use)")
    (children / "children").write_text("41 42 ")
    assert health.without_workers(runtime, host, tmp_path / "proc") == ""


def answering(reply: bytes | None) -> tuple[socket.socket, threading.Thread, threading.Event]:
    """A listener on 127.0.0.1 that reads one request and sends `reply`
    (None: says nothing until the event is set, however long the probe
    takes to give up), then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve():
        conn, _ = server.accept()
        with conn:
            request = conn.recv(4096)
            assert request.startswith(b"GET /-/healthy HTTP/1.1\r\n"), request
            if reply is None:
                done.wait(30)
            else:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread, done


@pytest.mark.parametrize("reply, status", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", 200),
    (b"HTTP/1.1 503 Service Unavailable\r\n", 503),
    (b"HTTP/1.1 5", OSError),  # cut before its status
    (b"SSH-2.0-OpenSSH_9.2\r\n", OSError),  # not HTTP
    (b"", OSError),  # closed without a word
    (None, TimeoutError),
])
def test_the_probe_reads_the_status_line_alone(monkeypatch, reply, status):
    monkeypatch.setattr(health, "PROBE_SECONDS", 0.3)
    server, thread, done = answering(reply)
    with server:
        port = server.getsockname()[1]
        try:
            if isinstance(status, int):
                assert health.probe(port) == status
            else:
                with pytest.raises(status):
                    health.probe(port)
        finally:
            done.set()
        thread.join(5)
