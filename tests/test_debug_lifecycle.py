"""Debug mode starts and stops fast: the first response within 2 s of
`docker run`, `docker stop` under 2 s, and Ctrl-C ends a container started
with `docker run -it`.

Each figure is timed on the engine's clock (its start, signal and die
events) from states, never a fixed sleep, so that a loaded machine's slow
docker CLI is not counted as the image's time: a test waits as long as it
needs to, then checks the figure against the budget. The containers get a
large CPU weight (PRIORITY), so that what the budget measures is the image's
own work, not how busy the neighbours keep the machine's two CPUs."""

import os
import pty
import subprocess
import threading
import time

from containers import Container
from helpers import docker, free_port, unique_name

# The promises, in seconds.
FIRST_RESPONSE_BUDGET = 2.0
STOP_BUDGET = 2.0
# Ten times the default CPU weight (cgroup cpu.shares / cpu.weight): under
# contention the container runs first; on an idle machine it changes nothing.
PRIORITY = ("--cpu-shares", "10240")


def serving(containers, app_copy):
    """A debug-mode container once its server answers."""
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app", *PRIORITY))
    c.wait_http("/api/hello")
    return c


def test_first_response_within_2s_of_docker_run(containers, app_copy, figure):
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app", *PRIORITY))
    c.wait_http("/api/hello", timeout=30, interval=0.02)
    answered = time.time()
    elapsed = answered - c.started_at()
    figure("docker run to first response, seconds", f"{elapsed:.2f}")
    assert elapsed < FIRST_RESPONSE_BUDGET, f"first response {elapsed:.2f}s after the start\n{c.logs()}"


def test_docker_stop_takes_under_2s(containers, app_copy, figure):
    c = serving(containers, app_copy)
    since = time.time()
    docker("stop", c.name, timeout=60)
    elapsed = c.signal_to_exit_seconds(since)
    figure("docker stop, seconds", f"{elapsed:.2f}")
    assert elapsed < STOP_BUDGET, f"docker stop took {elapsed:.2f}s\n{c.logs()}"
    assert c.exit_code() == 0, c.logs()


def test_sigint_without_a_terminal_stops_the_container(containers, app_copy, figure):
    """Without -t, the docker CLI forwards Ctrl-C as SIGINT to PID 1 (tini),
    which hands it to the server."""
    c = serving(containers, app_copy)
    since = time.time()
    docker("kill", "--signal", "INT", c.name)
    c.wait_exit(timeout=60)
    elapsed = c.signal_to_exit_seconds(since)
    figure("SIGINT to stopped, seconds", f"{elapsed:.2f}")
    assert elapsed < STOP_BUDGET, f"SIGINT to exit took {elapsed:.2f}s\n{c.logs()}"


class Terminal:
    """`docker run -it ...` on a pseudo-terminal, as a developer's shell runs
    it; everything it prints is collected."""

    def __init__(self, args: list[str]):
        master, slave = pty.openpty()
        self.master = master
        self.output = bytearray()
        # Notified on every chunk of output, and when the terminal closes.
        self.changed = threading.Condition()
        self.process = subprocess.Popen(["docker", *args], stdin=slave, stdout=slave, stderr=slave,
                                        start_new_session=True)
        os.close(slave)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            with self.changed:
                if not chunk:
                    self.changed.notify_all()
                    return
                self.output.extend(chunk)
                self.changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        """Blocks until `text` has been printed; fails if docker run exits
        first or after `timeout`."""
        def seen_or_ended():
            return text in self.text() or self.process.poll() is not None
        with self.changed:
            # Woken by new output; the 1 s bound only rechecks the process.
            deadline = time.monotonic() + timeout
            while not seen_or_ended() and time.monotonic() < deadline:
                self.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        assert text in self.text(), f"no {text!r} after {timeout}s:\n{self.text()}"

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        os.close(self.master)


def test_ctrl_c_stops_a_container_started_with_it(image, app_copy, figure):
    """With -t the container has its own terminal: Ctrl-C is the byte 0x03,
    which that terminal turns into SIGINT for the server's process group."""
    name, port = unique_name(), free_port()
    terminal = Terminal(["run", "-it", "--name", name, "--network", "host", "-e", f"PORT={port}",
                         "-v", f"{app_copy}:/app", *PRIORITY, image, "-d", "debug"])
    try:
        # The serving process is up (its PIN printed) and answers.
        terminal.wait_for("Debugger PIN", timeout=60)
        container = Container(name=name, port=port, image=image)
        container.wait_http("/api/hello", timeout=30)
        typed = time.time()
        terminal.type(b"\x03")
        try:
            terminal.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"docker run -it still running 60s after Ctrl-C:\n{terminal.text()}") \
                from None
        state = docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        assert state == "false", terminal.text()
        # From the keystroke to the exit the engine saw.
        elapsed = container.died_at(typed - 1) / 1e9 - typed
        figure("Ctrl-C to docker run -it returning, seconds", f"{elapsed:.2f}")
        assert elapsed < STOP_BUDGET, f"Ctrl-C took {elapsed:.2f}s to stop it:\n{terminal.text()}"
    finally:
        terminal.close()
        docker("rm", "-f", name, check=False)
