"""Every process in the container is supervised. Killed with SIGKILL, each
one either comes back (its death logged, serving and logging going on) or
takes the container down within 2 s, non-zero, its last line naming what
died, once nginx has answered what it could and written its log: every
request a client got an answer for is in the access log, and requests on a
dead uWSGI get a logged 502. Nothing inside the container can kill PID 1,
the entry-point that supervises; and PID 1 reaps orphans."""

import json
import threading
import time
import urllib.request
import uuid
from collections import Counter

import pytest

from containers import SlowRequest
from helpers import CERT, KEY, docker, free_port, share_with_container

# Processes that come back, by what their command line starts with.
RECOVER = {
    "the JSON log relay": "python3 -I -m flaskbox json-log",
    "the metrics server": "python3 -I -m flaskbox metrics",
    "the certificate watcher": "python3 -I -m flaskbox tls-watch",
    "an nginx worker": "nginx: worker process",
    "a uWSGI worker": "flaskbox uWSGI worker",
}
# Processes whose death ends the container.
FATAL = {
    "nginx's master": "nginx: master process",
    "uWSGI's master": "flaskbox uWSGI master",
}


def kill9(container, pid: str) -> None:
    container.signal("KILL", pid)


def answered_and_logged(container, path: str) -> bool:
    """A request answered 200 whose own line reaches the access log."""
    resp = container.request(path)
    if resp.status != 200:
        return False
    request_id = resp.headers["x-request-id"]
    logged = f'"request_id":"{request_id}"'
    container.wait_until(lambda: any(logged in line for line in container.stdout_lines()),
                         f"{path} in the access log")
    return True


def test_helpers_and_workers_come_back_and_pid_1_cannot_be_killed(containers, fixture_image, certs, figure):
    c = containers.run(image=fixture_image["image"],
                       env={"LOG_FORMAT": "json", "METRICS_PORT": str(free_port()), "TLS_CERT": CERT,
                            "TLS_KEY": KEY, "TLS_PORT": str(free_port())},
                       docker_args=("-v", f"{certs}:/etc/tls:ro"))
    c.wait_http("/")
    # PID 1 ignores even SIGKILL from inside: the supervisor stays.
    kill9(c, "1")
    assert answered_and_logged(c, f"/whoami?after=pid1-{uuid.uuid4().hex}")
    for name, command in RECOVER.items():
        before = c.pids(command)
        assert before, (name, c.processes())
        started = time.monotonic()
        kill9(c, before[0])
        c.wait_until(lambda: before[0] not in c.pids(command) and len(c.pids(command)) == len(before),  # noqa: B023
                     f"{name} in place again", timeout=10)
        figure(f"{name} killed -9: back after, seconds", f"{time.monotonic() - started:.2f}")
        assert answered_and_logged(c, f"/whoami?after={uuid.uuid4().hex}"), name
    logs = c.logs()
    for helper in ("the JSON log relay", "the metrics server", "the certificate watcher"):
        assert f"{helper.removeprefix('the ')} exited with code 137" in logs, helper
    assert "killed by signal 9" in logs  # uWSGI's line for its worker
    assert "exited on signal 9" in logs  # nginx's for its worker
    # Every line on stderr is still JSON, the relay's restart included.
    stderr = c.logs().splitlines()
    assert all(json.loads(line) for line in stderr if line.startswith("{")), stderr[-5:]
    assert c.running()


HELPERS = {name: RECOVER[name]
           for name in ("the JSON log relay", "the metrics server", "the certificate watcher")}


def test_helpers_dying_while_a_reload_waits_for_new_code_come_back_at_once(containers, app_copy, certs):
    # The supervisor waits inside the reload while the new code imports
    # (20 s here): helpers that die meanwhile are started again there, not
    # after it. Before, they stayed dead until the import ended, and a dead
    # relay left every write to stderr waiting on a pipe that fills.
    metrics = free_port()
    c = containers.run(env={"LOG_FORMAT": "json", "METRICS_PORT": str(metrics), "TLS_CERT": CERT,
                            "TLS_KEY": KEY, "TLS_PORT": str(free_port())},
                       docker_args=("-v", f"{app_copy}:/app:ro", "-v", f"{certs}:/etc/tls:ro"))
    c.wait_http("/")
    source = app_copy / "app.py"
    source.write_text("import time\n\ntime.sleep(20)\n" + source.read_text())
    share_with_container(source)
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "SIGHUP: reloading in place" in c.logs(), "the reload under way")
    for name, command in HELPERS.items():
        before = c.pids(command)
        assert len(before) == 1, (name, c.processes())
        kill9(c, before[0])
        c.wait_until(lambda: c.pids(command) and c.pids(command) != before,  # noqa: B023
                     f"{name} in place again during the reload", timeout=5)
        assert f"{name.removeprefix('the ')} exited with code 137" in c.logs(), name
    logs = c.logs()
    assert "serves the app's new code" not in logs, "the import ended first: the test proves nothing"
    # Each works: the relay's own restart line is JSON, the metrics answer,
    # and the old code still serves.
    relayed = [line for line in logs.splitlines() if "JSON log relay exited" in line]
    assert relayed and json.loads(relayed[-1]), relayed
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as response:
        assert b"flaskbox_http_requests_total" in response.read()
    assert c.request("/").status == 200
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the reload done",
                 timeout=40)
    assert c.running()



def test_a_relay_dying_during_a_stop_comes_back_and_the_last_words_are_logged(containers, fixture_image):
    # While the supervisor waits for nginx to drain, a dead relay is started
    # again there and then. Before, the lines written after its death (the
    # draining request's, "stopped") stayed in the pipe and never reached
    # docker logs, and a writer blocked once the pipe was full.
    c = containers.run(image=fixture_image["image"], env={"LOG_FORMAT": "json"})
    c.wait_http("/")
    slow = SlowRequest(c, 3)
    relay = c.pids(RECOVER["the JSON log relay"])
    assert len(relay) == 1, c.processes()
    docker("kill", "-s", "TERM", c.name)
    c.wait_until(lambda: "stopping: WebSockets end" in c.logs(), "the stop under way")
    kill9(c, relay[0])
    assert slow.join() == 200
    assert c.wait_exit(timeout=15) == 0, c.logs()
    lines = [json.loads(line) for line in c.logs().splitlines() if line.startswith("{")]
    text = [json.dumps(line) for line in lines]
    assert any("JSON log relay exited with code 137" in line for line in text), text[-5:]
    assert any("/sleep/3" in line and "200" in line for line in text), text[-5:]
    assert "stopped" in text[-1], text[-5:]


def test_a_relay_killed_while_the_app_floods_stderr_comes_back_and_nothing_hangs(containers, fixture_image):
    # Two requests print 100000 lines each; the relay is killed meanwhile, so
    # the pipe fills at once. Before, PID 1 blocked writing bash's notice of
    # the relay's death into that full pipe, never started a relay again,
    # and every writer hung with it: the requests, then the stop (SIGKILL).
    c = containers.run(image=fixture_image["image"], env={"LOG_FORMAT": "json"})
    c.wait_http("/")
    relay = c.pids(RECOVER["the JSON log relay"])
    statuses: list[int] = []

    def shout():
        statuses.append(c.request("/shout/100000", timeout=30).status)

    shouting = [threading.Thread(target=shout) for _ in range(2)]
    for thread in shouting:
        thread.start()
    c.wait_until(lambda: "shout 1000 of 100000" in c.logs(), "the app shouting")
    kill9(c, relay[0])
    for thread in shouting:
        thread.join(35)
    assert statuses == [200, 200], c.logs()[-3000:]
    assert c.pids(RECOVER["the JSON log relay"]) not in ([], relay)
    stopped = time.monotonic()
    docker("kill", "-s", "TERM", c.name)
    assert c.wait_exit(timeout=15) == 0, c.logs()[-3000:]
    assert time.monotonic() - stopped < 5
    logs = c.logs().splitlines()
    # A killed relay loses at most what it had read and not yet written.
    assert sum(1 for line in logs if '"shout ' in line) >= 200000 - 1000
    assert "stopped" in logs[-1], logs[-3:]

class Traffic:
    """Clients that each make requests until stopped, keeping what came
    back: a status and the request id nginx gave it, or the error."""

    def __init__(self, container, clients: int = 8):
        self.container, self.answered, self.errors = container, [], Counter()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def run(self):
        while not self.stopped.is_set():
            try:
                resp = self.container.request("/sleep/0", timeout=5)
                self.answered.append((resp.status, resp.headers.get("x-request-id")))
            except OSError as exc:
                self.errors[type(exc).__name__] += 1
                time.sleep(0.02)

    def stop(self):
        self.stopped.set()
        for thread in self.threads:
            thread.join(10)


@pytest.mark.parametrize("name", FATAL)
def test_a_dead_master_stops_the_container_in_2_s_with_every_answer_logged(containers, fixture_image, name,
                                                                          figure):
    c = containers.serving(image=fixture_image["image"])
    traffic = Traffic(c)
    c.wait_until(lambda: len(traffic.answered) > 200, "traffic")
    pids = c.pids(FATAL[name])
    assert len(pids) == 1, c.processes()
    started = time.monotonic()
    kill9(c, pids[0])
    code = c.wait_exit(timeout=10)
    elapsed = time.monotonic() - started
    traffic.stop()
    figure(f"{name} killed -9: container gone after, seconds", f"{elapsed:.2f}")
    statuses = Counter(status for status, _ in traffic.answered)
    figure(f"{name} killed -9: answers, errors", f"{statuses}, {traffic.errors}")
    assert code == 137 and elapsed < 2.5, (code, elapsed, c.logs())
    last = [line for line in c.logs().splitlines() if line.startswith("flaskbox:")][-1]
    assert last == f"flaskbox: error: container stopped: {name} was killed by signal 9", last
    logged = {line.split("id=")[1].split()[0] for line in c.stdout_lines() if " id=" in line}
    missing = [answer for answer in traffic.answered if answer[1] not in logged]
    assert missing == [], f"{len(missing)} answered requests not in the access log: {missing[:5]}"
    assert {status for status, _ in traffic.answered} <= {200, 502, 503}, Counter(traffic.answered)


def test_pid1_reaps_orphaned_processes(containers):
    c = containers.serving()
    # A background child outlives the shell that started it: it is re-parented
    # to PID 1, which must collect it when it exits, or it stays a zombie.
    result = c.exec("bash", "-c", "sleep 0.5 & echo $!")
    orphan = result.stdout.strip()
    assert orphan.isdigit(), result.stderr

    def state():
        out = c.exec("bash", "-c", f"awk '/^(State|PPid):/ {{print $2}}' /proc/{orphan}/status 2>/dev/null")
        return out.stdout.split()

    # While it sleeps, its parent is PID 1 (the entry-point, which supervises).
    assert state() in (["S", "1"], []), state()
    c.wait_until(lambda: state() == [], "the orphan to be reaped (no zombie left)", timeout=5)
