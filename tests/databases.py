"""Real database servers on loopback for the tests: PostgreSQL and Redis,
from the host's packages (tests/run.sh installs them), each on a free
port, in a folder of its own, stopped and removed at the end. A container
run with --network host reaches them at 127.0.0.1."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from helpers import free_port

# The password in the URL the apps are given: trust authentication never
# asks for it, and no log may show it.
PASSWORD = f"pw-{uuid.uuid4().hex[:12]}"


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: as its own user, then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Postgres:
    """One PostgreSQL cluster: initdb, then the server on 127.0.0.1:port."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda path: int(path.split("/")[4]))
        if not found:
            raise AssertionError("no PostgreSQL server here: tests/run.sh installs the postgresql package")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        # Not under pytest's temporary folders: their parents are root's alone.
        self.dir = Path(tempfile.mkdtemp(prefix="flaskbox-pg-"))
        if os.geteuid() == 0:
            os.chown(self.dir, pwd.getpwnam("postgres").pw_uid, -1)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 120) -> None:
        result = subprocess.run([*_as_postgres(), *command], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise AssertionError(f"{command[0]} failed:\n{result.stdout}{result.stderr}\n{log}")

    def start(self) -> Postgres:
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                   "-c fsync=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """One redis-server on 127.0.0.1:port, nothing saved to disk."""

    def __init__(self):
        if not shutil.which("redis-server"):
            raise AssertionError("no redis-server here: tests/run.sh installs the redis-server package")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
