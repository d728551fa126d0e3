"""Real containers driven with the docker CLI: a running test container
(its state, its processes and their memory and CPU, traffic to it, polling
it until ready with its log on failure, the engine's clock of its events),
a slow request held in a worker, and the factory that starts containers and
removes every one of them.

Every container runs with --network host and its own free high PORT, and all
traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from helpers import docker, free_port, key_value_flags, unique_name


class ContainerDied(AssertionError):
    """The container exited while a test was waiting for it."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


@dataclass
class Container:
    """A running test container; `docker logs` is attached to failures."""

    name: str
    port: int
    image: str
    removed: bool = field(default=False)
    _cpu_account: Path | None = field(default=None, repr=False)

    # --- state ---------------------------------------------------------
    def inspect(self) -> dict:
        return json.loads(docker("inspect", self.name).stdout)[0]

    def running(self) -> bool:
        return self.inspect()["State"]["Running"]

    def exit_code(self) -> int:
        return self.inspect()["State"]["ExitCode"]

    def logs(self) -> str:
        out = docker("logs", self.name, check=False)
        return out.stdout + out.stderr

    def timeline(self) -> str:
        """stdout and stderr merged in the order the lines were written
        (docker keeps the streams apart; its timestamps put them together)."""
        return "\n".join(text for _, text in sorted(self.stamped_lines(), key=lambda line: line[0]))

    def stamped_lines(self) -> list[tuple[str, str]]:
        """Each log line of both streams with docker's stamp: (stamp, text)."""
        out = docker("logs", "--timestamps", self.name, check=False)
        return [(stamp, text) for stamp, _, text in
                (line.partition(" ") for line in out.stdout.splitlines() + out.stderr.splitlines())]

    def stdout_lines(self) -> list[str]:
        """Only what the container wrote to stdout (docker keeps them apart)."""
        return docker("logs", self.name, check=False).stdout.splitlines()

    def exec(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess:
        extra = ["--user", user] if user else []
        return docker("exec", *extra, self.name, *args, check=False)

    def processes(self, user: str | None = None) -> list[tuple[str, str, str]]:
        """(pid, real uid, command line) of every process in the container,
        read from /proc inside it (the image has no ps). The probe itself
        runs as `user` (default: the container's user)."""
        return [(pid, uid, cmd) for pid, _, uid, cmd in self._processes(user)]

    def app_processes(self, user: str | None = None) -> list[tuple[str, str, str]]:
        """processes() of pid 1's descendants, pid 1 left out: what `docker
        exec` starts is not the app's (Docker's health check runs as the
        container's user, root for a container started as root, and a CI
        run caught one running)."""
        rows = self._processes(user)
        parents = {pid: ppid for pid, ppid, _, _ in rows}

        def of_the_app(pid: str) -> bool:
            while pid in parents and pid != "1":
                pid = parents[pid]
            return pid == "1"
        return [(pid, uid, cmd) for pid, _, uid, cmd in rows if pid != "1" and of_the_app(pid)]

    def _processes(self, user: str | None) -> list[tuple[str, ...]]:
        """(pid, parent pid, real uid, command line) of every process."""
        script = (
            'for p in /proc/[0-9]*; do '
            'c="$(tr "\\0" " " < "$p/cmdline" 2>/dev/null)" || continue; '
            'u="$(awk \'/^PPid:/ {pp=$2} /^Uid:/ {u=$2} END {print pp "\\t" u}\' "$p/status" 2>/dev/null)" '
            '|| continue; '
            '[ -n "$c" ] && printf "%s\\t%s\\t%s\\n" "${p#/proc/}" "$u" "$c"; done; true'
        )
        out = self.exec("bash", "-c", script, user=user).stdout
        return [tuple(line.split("\t", 3)) for line in out.splitlines() if line.count("\t") >= 3]

    def pids(self, cmdline_prefix: str) -> list[str]:
        """PIDs inside the container whose command line starts with the prefix."""
        return [pid for pid, _, cmd in self.processes() if cmd.startswith(cmdline_prefix)]

    def host_pids(self) -> list[str]:
        """The container's processes as the host numbers them (`docker
        top`): read from the host's /proc, no probe process is counted."""
        return docker("top", self.name, "-eo", "pid").stdout.split()[1:]

    def _memory_kb(self, path: str, field_name: str) -> int:
        total = 0
        for pid in self.host_pids():
            try:
                lines = Path(f"/proc/{pid}/{path}").read_text().splitlines()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited since `docker top`
            # A process that has exited but not been reaped yet (a recycled
            # worker, a health check) has no memory lines left: it holds none.
            total += next((int(line.split()[1]) for line in lines if line.startswith(field_name)), 0)
        return total

    def rss_kb(self) -> int:
        """Sum of the resident memory (VmRSS) of every process in the
        container: pages shared copy-on-write count once per process."""
        return self._memory_kb("status", "VmRSS:")

    def pss_kb(self) -> int:
        """Sum of the proportional set size: each shared page divided among
        the processes sharing it, so the total is what the container uses."""
        return self._memory_kb("smaps_rollup", "Pss:")

    def cpu_total_seconds(self) -> float:
        """CPU time of the whole container so far, exited processes included
        (its cgroup's account: cgroup v2's cpu.stat or v1's cpuacct)."""
        if self._cpu_account is None:
            self._cpu_account = self._find_cpu_account()
        text = self._cpu_account.read_text()
        if self._cpu_account.name == "cpu.stat":
            stat = text.split()
            return int(stat[stat.index("usage_usec") + 1]) / 1e6
        return int(text) / 1e9

    def _find_cpu_account(self) -> Path:
        """The cgroup file cpu_total_seconds reads, found once (`docker top`
        takes a tenth of a second: a bench reads the account around each
        timed window)."""
        pid = self.host_pids()[0]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # cgroup v2
                return Path(f"/sys/fs/cgroup{path}/cpu.stat")
            if "cpuacct" in controllers.split(","):
                folder = f"/sys/fs/cgroup/{controllers}{path}"
                if not Path(folder).exists():
                    folder = f"/sys/fs/cgroup/cpuacct{path}"
                return Path(f"{folder}/cpuacct.usage")
        raise RuntimeError(f"no CPU account for {self.name}")

    def cpu_seconds(self) -> dict[str, tuple[str, float]]:
        """CPU time (user + system) each process has used so far, by host
        PID: (command name, seconds), from the host's /proc/PID/stat."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for pid in self.host_pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue  # exited since `docker top`
            name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            # Fields 14 and 15 of proc(5), utime and stime; `rest` starts at field 3.
            used[pid] = (name, (int(rest[11]) + int(rest[12])) / ticks)
        return used

    def signal(self, sig: str, *pids: str) -> None:
        result = self.exec("bash", "-c", f"kill -{sig} {' '.join(pids)}")
        assert result.returncode == 0, result.stderr

    def fail(self, message: str) -> None:
        raise ContainerDied(f"{message}\n--- docker logs {self.name} ---\n{self.logs()}")

    # --- traffic -------------------------------------------------------
    def request(self, path: str = "/", method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10,
                source: str | None = None) -> Response:
        """One request on a new connection. `source` is a loopback address
        to send from (127.0.0.2, ...): another client, as nginx sees it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        """Sends bytes as they are (malformed requests included) and returns
        everything the server answers until it closes or goes quiet."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
        return b"".join(chunks)

    def wait_until(self, predicate, what: str, timeout: float = 30, interval: float = 0.1):
        """Poll predicate() until it returns a truthy value. Stops early, with
        the container's log, if the container exits."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        next_state_check = 0.0
        while time.monotonic() < deadline:
            try:
                result = predicate()
                if result:
                    return result
            except (OSError, http.client.HTTPException) as exc:
                last_error = exc
            # `docker inspect` takes ~20 ms: at most every 0.2 s, so that a
            # fine interval still polls finely.
            if time.monotonic() >= next_state_check:
                if not self.running():
                    # The exit may have come between the predicate's call and
                    # this check, and made it true (a last log line): once more.
                    try:
                        if result := predicate():
                            return result
                    except (OSError, http.client.HTTPException):
                        pass
                    self.fail(f"container exited (code {self.exit_code()}) while waiting for {what}")
                next_state_check = time.monotonic() + 0.2
            time.sleep(interval)
        self.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")

    def wait_healthy(self, timeout: float = 30) -> None:
        """Poll the image's own health check until it passes."""
        self.wait_until(lambda: self.exec("healthcheck.sh").returncode == 0, "a passing health check",
                        timeout=timeout)

    def wait_http(self, path: str = "/", status: int = 200, timeout: float = 30,
                  interval: float = 0.1) -> Response:
        def ready():
            resp = self.request(path, timeout=5)
            return resp if resp.status == status else None

        return self.wait_until(ready, f"GET {path} -> {status}", timeout=timeout, interval=interval)

    # --- lifecycle -----------------------------------------------------
    def wait_exit(self, timeout: float = 30) -> int:
        """Blocks (`docker wait`) until the container exits; its exit code.
        Fails, with the container's log, if it still runs after `timeout`."""
        try:
            result = docker("wait", self.name, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"still running {timeout}s later")
        return int(result.stdout.strip())

    # --- the engine's own clock ----------------------------------------
    def events(self, since: float) -> list[tuple[str, int]]:
        """(action, wall-clock ns) of this container's docker events from
        `since` (time.time()) until now: the engine's record of when it
        started, signalled and saw the container die, which a loaded machine
        does not blur with the docker CLI's own start-up."""
        out = docker("events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}",
                     "--filter", f"container={self.name}", "--format", "{{.Action}} {{.TimeNano}}").stdout
        return [(action, int(nanos)) for action, nanos in (line.rsplit(" ", 1) for line in out.splitlines())]

    def died_at(self, since: float) -> int:
        """Wall-clock ns of the container's exit, as the engine saw it."""
        died = [nanos for action, nanos in self.events(since) if action == "die"]
        if not died:
            self.fail(f"no die event since {since}")
        return died[0]

    def signal_to_exit_seconds(self, since: float) -> float:
        """Seconds from the engine's first signal to the container (`docker
        stop`, `docker kill`) to its exit."""
        events = self.events(since)
        signalled = [nanos for action, nanos in events if action.startswith("kill")]
        died = [nanos for action, nanos in events if action == "die"]
        if not signalled or not died:
            self.fail(f"no kill and die events since {since}: {events}")
        return (died[0] - signalled[0]) / 1e9

    def started_at(self) -> float:
        """Wall-clock seconds when the engine started the container's process."""
        return wall_clock(self.inspect()["State"]["StartedAt"])

    def logged_at(self, text: str) -> float:
        """Wall-clock seconds when the first log line holding `text` was
        written, as docker stamped it."""
        stamps = [stamp for stamp, line in self.stamped_lines() if text in line]
        if not stamps:
            self.fail(f"no log line holds {text!r}")
        return min(map(wall_clock, stamps))

    def remove(self) -> None:
        if not self.removed:
            docker("rm", "-f", "-v", self.name, check=False)
            self.removed = True


def wall_clock(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 stamp in UTC, as docker
    writes them (nanoseconds)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + float(f"0.{fraction or 0}")


class SlowRequest:
    """GET /sleep/SECONDS (the fixture app's), sent from a thread and
    returned once a worker runs it (its "sleep start" line in the log);
    join() gives its status."""

    def __init__(self, container: Container, seconds: int, timeout: float = 60):
        self.status: int | None = None
        self.timeout = timeout
        marker = f"sleep start {seconds}"
        before = container.logs().count(marker)
        self.thread = threading.Thread(target=self._send, args=(container, seconds), daemon=True)
        self.thread.start()
        container.wait_until(lambda: container.logs().count(marker) > before, f"/sleep/{seconds} in a worker")

    def _send(self, container: Container, seconds: int) -> None:
        self.status = container.request(f"/sleep/{seconds}", timeout=self.timeout).status

    def join(self) -> int | None:
        self.thread.join(self.timeout + 5)
        return self.status


class ContainerFactory:
    """Starts containers and removes every one of them at teardown."""

    def __init__(self, image: str):
        self.image = image
        self.started: list[Container] = []

    def run(self, *args: str, env: dict[str, str] | None = None, docker_args: tuple[str, ...] = (),
            image: str | None = None, port: int | None = None, set_port: bool = True) -> Container:
        """docker run -d --network host -e PORT=<free> [docker_args] IMAGE [args].
        set_port=False leaves PORT out (env says the port another way)."""
        port = port or free_port()
        env = {**({"PORT": str(port)} if set_port else {}), **(env or {})}
        name = unique_name()
        cmd = ["run", "-d", "--name", name, "--network", "host", *key_value_flags("-e", env)]
        cmd += [*docker_args, image or self.image, *args]
        container = Container(name=name, port=port, image=image or self.image)
        self.started.append(container)
        docker(*cmd)
        return container

    def serving(self, *args: str, **kwargs) -> Container:
        """run(), then wait until GET / answers 200."""
        container = self.run(*args, **kwargs)
        container.wait_http("/")
        return container

    def run_once(self, *args: str, env: dict[str, str] | None = None, docker_args: tuple[str, ...] = (),
                 timeout: float = 60, image: str | None = None) -> subprocess.CompletedProcess:
        """docker run --rm in the foreground (with a free PORT, as run() gives);
        returns the finished process."""
        env = {"PORT": str(free_port()), **(env or {})}
        cmd = ["run", "--rm", "--network", "host", *key_value_flags("-e", env)]
        cmd += [*docker_args, image or self.image, *args]
        return docker(*cmd, check=False, timeout=timeout)

    def cleanup(self) -> None:
        for container in self.started:
            container.remove()
