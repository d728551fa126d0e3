"""A port something already listens on is refused at start (exit 2), on the
host network where that may be another container: requests must not be
split between two versions of the code by accident. SHARE_PORT=1 shares it on
purpose (reuseport); debug mode never shares. 'serving' is said only once
nginx holds the port."""

import re
import socket
import time
import uuid
from contextlib import contextmanager

from helpers import free_port, share_with_container

SERVING_LINE = re.compile(r"serving \S+ on port")


@contextmanager
def listening(host: str, port: int):
    """Something else listening on `port` of this machine while the block runs."""
    with socket.socket() as sock:
        sock.bind((host, port))
        sock.listen()
        yield sock


def who(container) -> str:
    """The WHO variable of the container that answered (the fixture app's /env/<name>)."""
    resp = container.request("/env/WHO", timeout=5)
    assert resp.status == 200, (resp.status, resp.text)
    return resp.json()["value"]


def test_a_second_container_on_a_served_port_is_refused(containers, fixture_image, figure):
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    c1 = containers.serving(image=fixture_image["image"], env={"WHO": first})
    started = time.monotonic()
    c2 = containers.run(image=fixture_image["image"], port=c1.port, env={"WHO": second})
    code = c2.wait_exit(timeout=20)
    figure("start to exit of a container on a taken PORT, seconds", f"{time.monotonic() - started:.2f}")
    logs = c2.logs()
    assert code == 2, logs
    assert time.monotonic() - started < 10, logs
    assert f"PORT={c1.port}: something already listens on it here" in logs, logs
    assert "SHARE_PORT=1" in logs, logs
    assert not SERVING_LINE.search(logs), logs
    # The first one never shared its port: every request is its own.
    assert [who(c1) for _ in range(20)] == [first] * 20, c1.logs()
    assert c1.running(), c1.logs()


def test_share_port_lets_two_containers_serve_one_port(containers, fixture_image):
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    env = {"SHARE_PORT": "1"}
    c1 = containers.serving(image=fixture_image["image"], env={**env, "WHO": first})
    c2 = containers.run(image=fixture_image["image"], port=c1.port, env={**env, "WHO": second})
    c2.wait_until(lambda: SERVING_LINE.search(c2.logs()), "the second container serving")
    seen: set[str] = set()

    def both_answered():
        seen.add(who(c1))  # a new connection each time: the kernel picks a listener
        return seen == {first, second}

    c1.wait_until(both_answered, "requests reaching both containers", timeout=30, interval=0.02)
    assert c1.running() and c2.running(), c1.logs() + c2.logs()


def test_debug_mode_refuses_a_taken_port(containers):
    port = free_port()
    with listening("127.0.0.1", port):
        c = containers.run("-d", "debug", port=port)
        code = c.wait_exit(timeout=20)
    logs = c.logs()
    assert code == 2, logs
    assert f"PORT={port}: something already listens on it here (127.0.0.1:{port})" in logs, logs
    assert "debug mode never shares its port" in logs, logs


def test_a_taken_metrics_port_is_refused(containers):
    metrics = free_port()
    with listening("0.0.0.0", metrics):
        c = containers.run(env={"METRICS_PORT": str(metrics)})
        code = c.wait_exit(timeout=20)
    logs = c.logs()
    assert code == 2, logs
    assert f"METRICS_PORT={metrics}: something already listens on it here (0.0.0.0:{metrics})" in logs, logs
    assert not SERVING_LINE.search(logs), logs


# An app whose import takes PORT for itself, after the settings were checked.
PORT_THIEF = '''import os
import socket

from flask import Flask

app = Flask(__name__)
held = socket.socket()
held.bind(("0.0.0.0", int(os.environ["PORT"])))
held.listen()


@app.get("/")
def index():
    return "{token}\\n"
'''


def test_serving_is_said_only_once_nginx_holds_the_port(containers, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(PORT_THIEF.format(token=uuid.uuid4().hex))
    tmp_path.chmod(0o755)
    share_with_container(app)
    c = containers.run(docker_args=("-v", f"{app}:/app:ro"))
    code = c.wait_exit(timeout=30)
    logs = c.logs()
    assert code != 0, logs
    assert "nginx could not start" in logs and "not serving" in logs, logs
    assert "Address already in use" in logs, logs
    assert not SERVING_LINE.search(logs), logs
    assert c.stdout_lines() == [], logs
