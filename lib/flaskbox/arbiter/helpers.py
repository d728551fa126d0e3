"""The processes beside the servers, which serving never waits on, in one
list: the metrics server (METRICS_PORT), the certificate watcher (TLS_CERT)
and the JSON log relay (LOG_FORMAT=json, which the entry-point started
before its hooks: lib/common.sh). Each is started again when it dies,
whatever else the arbiter is doing; the stop ends them last, so that the
metrics show the stop, and the relay last of all, once it has every line."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from ..log import error
from .loop import Child

# Seconds before a helper that died starts again: one that dies at once is
# a line a second, not a busy loop. The log relay starts again at once:
# until it runs, every write to stderr waits in its pipe, and a writer
# blocks once the pipe is full.
RESTART_AFTER = 1.0
# Seconds the container's end waits at the most for the relay's last lines.
LAST_LINES = 2.0
COMMAND = ["python3", "-I", "-m", "flaskbox"]


class Helper:
    def __init__(self, name: str, command: str, when: str, arbiter):
        # when: "start", with the pool; "serving", once nginx listens.
        self.name, self.argv, self.when = name, [*COMMAND, command], when
        self.arbiter = arbiter
        self.child: Child | None = None

    def how(self) -> dict:
        """How system.spawn starts it."""
        return {"env": self.arbiter.server_env}

    def before_start(self) -> None:
        """What it needs done before each start."""


class Metrics(Helper):
    def before_start(self) -> None:
        # Its mark of readiness, which the start waits for (arbiter.py).
        self.arbiter.runtime.metrics_ready.unlink(missing_ok=True)


class LogRelay(Helper):
    """It reads the pipe every process's stderr goes to (opened anew,
    read-only, so that it sees the end once every writer is gone) and
    writes the container's own stderr, which the arbiter keeps for it."""

    def __init__(self, arbiter, pid: int, pipe: int, stderr: int):
        super().__init__("the JSON log relay", "json-log", "start", arbiter)
        self.pid, self.pipe, self.stderr = pid, pipe, stderr
        # Not for the other children: a relay holding a writer of its own
        # pipe would never see its end.
        for fd in (pipe, stderr):
            os.set_inheritable(fd, False)

    def how(self) -> dict:
        return {"env": self.arbiter.server_env, "stdin": f"/proc/self/fd/{self.pipe}", "stdout": self.stderr,
                "stderr": self.stderr}


class Helpers:
    def __init__(self, arbiter, relay: tuple[int, int, int] | None = None):
        self.arbiter, self.loop = arbiter, arbiter.loop
        settings = arbiter.settings
        self.relay = LogRelay(arbiter, *relay) if relay else None
        self.metrics = None
        if settings["METRICS_PORT"]:
            self.metrics = Metrics("the metrics server", "metrics", "start", arbiter)
        watcher = None
        if settings["TLS_CERT"]:
            watcher = Helper("the certificate watcher", "tls-watch", "serving", arbiter)
        self.all = [helper for helper in (self.relay, self.metrics, watcher) if helper is not None]
        self.last = False  # the relay has its last lines: nothing starts again
        # The ends the stop and the last lines wait for: told to them, not
        # to the restart. Each helper's end comes to _died, whoever waits.
        self._awaited: dict[Child, Callable[[Child], None]] = {}
        if self.relay is not None:
            self.relay.child = self.loop.adopt(self.relay.name, self.relay.pid, self._died)

    def start(self, when: str) -> None:
        for helper in self.all:
            if helper.when == when and helper.child is None:
                self._start(helper)

    def _start(self, helper: Helper) -> None:
        # During a stop only the relay: the stop's lines, and the requests'
        # it drains, must reach the log.
        if self.arbiter.stopping and helper is not self.relay or self.last:
            return
        helper.before_start()
        try:
            helper.child = self.loop.spawn(helper.name, helper.argv, self._died, **helper.how())
        except OSError as exc:
            error(f"cannot start {helper.name} ({exc.strerror or exc}); trying again")
            self.loop.after(RESTART_AFTER, lambda: self._start(helper))

    def _died(self, child: Child) -> None:
        awaited = self._awaited.pop(child, None)
        if awaited is not None:
            return awaited(child)
        helper = next(helper for helper in self.all if helper.child is child)
        if self.last or not self.arbiter.helper_ended(helper, child):
            return
        if helper is self.relay:
            self._start(helper)
            error(f"the JSON log relay exited with code {child.status}; started again")
        elif not self.arbiter.stopping:
            error(f"{helper.name} exited with code {child.status}; starting it again")
            self.loop.after(RESTART_AFTER, lambda: self._start(helper))

    def stop(self, kill_at: float, gone: Callable[[], None]) -> None:
        """SIGTERM to each but the relay, SIGKILL to those left at kill_at;
        gone() once they have all ended."""
        left = [helper.child for helper in self.all
                if helper is not self.relay and helper.child is not None and helper.child.running]

        def ended(child: Child) -> None:
            if not any(other.running for other in left):
                deadline.cancel()
                gone()

        if not left:
            return gone()
        self._awaited.update(dict.fromkeys(left, ended))
        self.loop.signal(left, signal.SIGTERM)

        def kill() -> None:
            late = [child for child in left if child.running]
            for child in late:
                child.killed = True
            self.loop.signal(late, signal.SIGKILL)

        deadline = self.loop.at(kill_at, kill)

    def last_lines(self, gone: Callable[[], None], by: float | None = None) -> None:
        """The container ends: the relay gets the last lines. The arbiter's
        ends of its pipe close, and it writes what it still holds, sees the
        end and exits; gone() then, or after LAST_LINES at the most, and by
        `by` (a stop's budget: a writer left on the pipe keeps the relay
        from its end, and Docker's SIGKILL must not come first)."""
        relay, self.last = self.relay, True
        if relay is None or relay.child is None or not relay.child.running:
            return gone()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        os.close(relay.pipe)
        until = self.loop.now() + LAST_LINES
        deadline = self.loop.at(until if by is None else min(until, by), gone)

        def ended(child: Child) -> None:
            deadline.cancel()
            gone()

        self._awaited[relay.child] = ended
