"""The ends of the process tree, each in one place with its order and its
one clock.

Stop   `docker stop` (TERM, INT or QUIT): WebSockets end, nginx stops
       accepting and drains the requests in flight (event streams finish
       too, or are ended cleanly just before the drain's end), then uWSGI
       lets its now idle workers exit, then the helpers end. One budget for all of it,
       STOP_TIMEOUT (the orchestrator's grace period: layout.stop_drain says
       how it is spent), and every generation on the same clock. A stop that
       ended every request exits 0, however slowly an idle process went: a
       process that had to be killed is named as slow, not as a failure.
Abort  nginx's master or the serving uWSGI master died (a crash, kill -9,
       the OOM killer): nginx answers what it can and writes its log, then
       the container stops, non-zero, within 2 s, so that a restart policy
       or an orchestrator replaces it."""

from __future__ import annotations

import signal

from ..layout import STOP_KILL_AFTER_SECONDS, STOP_MARGIN_SECONDS, stop_drain
from ..log import error, info, warn
from .generation import STARTING
from .loop import Child

# How long nginx may go on answering once a server died, and then how long
# its workers have to write their log lines (SIGTERM) before SIGKILL: the
# container must be gone within 2 s.
ABORT_DRAIN = 1.0
ABORT_TERM = 0.4
# uWSGI's masters, in an abort: no mercy, killed past this; the workers
# still running a little before, so that none outlives its master.
ABORT_UWSGI = 0.3
ABORT_WORKERS = 0.2


def end(loop, child: Child, number: int, kill_at: float):
    """`number` to child, SIGKILL at kill_at if it still runs (named as slow
    to stop): that deadline, which the child's end cancels."""
    started = loop.now()

    def kill() -> None:
        if child.running:
            warn(f"{child.name} {child.pid} is slow to stop: still running {loop.now() - started:.1f}s after "
                 f"{signal.Signals(number).name}; killing it")
            child.killed = True
            loop.signal([child], signal.SIGKILL)

    deadline = loop.at(kill_at, kill)
    loop.signal([child], number)
    return deadline


def failed(child: Child) -> bool:
    """A server that failed on its way out: it ended with an error of its
    own, not by the stop's signal nor by the stop's SIGKILL."""
    return not child.killed and child.status not in (0, 128 + signal.SIGTERM, 128 + signal.SIGQUIT)


class Stop:
    def __init__(self, arbiter):
        self.arbiter, self.loop = arbiter, arbiter.loop
        self.status = 0
        self.started = self.loop.now()
        budget = arbiter.settings["STOP_TIMEOUT"]
        # Everything has ended by then; what is left of the budget is the exit's.
        self.end = self.started + budget - STOP_MARGIN_SECONDS
        # The log relay's last lines, by then at the latest: the rest is
        # for the interpreter's own exit.
        self.last_lines_by = self.started + budget - STOP_MARGIN_SECONDS / 4
        self.drain = stop_drain(budget)
        self._nginx_kill = None  # SIGKILL for nginx's master, past its drain

    def begin(self) -> None:
        info(f"stopping: WebSockets end, nginx drains the requests in flight (up to {self.drain} s; an event "
             "stream still open a second before is ended cleanly), then uWSGI")
        # flaskbox_draining in the metrics, which are served until the end. A
        # full disk may refuse the mark: the stop goes on all the same.
        try:
            self.arbiter.runtime.draining.touch()
        except OSError as exc:
            error(f"cannot mark the stop in {self.arbiter.runtime.dir} ({exc.strerror}; a full disk?): the "
                  "metrics will not show it")
        for generation in self.arbiter.running_generations():
            if generation.state == STARTING:
                generation.abandon()  # a reload's, still loading: it holds no request
            else:
                generation.end_streams(self.started + self.drain, "the stop",
                                       f"STOP_TIMEOUT {self.arbiter.settings['STOP_TIMEOUT']} s")
        nginx = self.arbiter.nginx.child
        if nginx is None or not nginx.running:
            return self._uwsgi()
        kill_at = self.started + self.drain + STOP_KILL_AFTER_SECONDS
        self._nginx_kill = end(self.loop, nginx, signal.SIGQUIT, kill_at)

    def ended(self, child: Child) -> None:
        """nginx's master has ended (the arbiter, its owner, tells)."""
        if self._nginx_kill is not None:
            self._nginx_kill.cancel()
        self._note(child)
        self._uwsgi()

    def _uwsgi(self) -> None:
        """Every generation stops on one clock: what nginx's drain left of
        the budget goes to the workers' exit (the requests nginx cut, then
        the app's exit handlers: an SDK's last flush), all but the last
        second, which is their masters'. Their SIGTERM comes as nginx ends:
        on a loaded machine that is late (each of nginx's workers counts
        worker_shutdown_timeout from when it takes the stop, then must get
        a CPU to end), and the second past the drain, up to nginx's kill,
        takes it, not the workers' 2 s. The log says what the drain took and
        when the workers' share ended: a share said as what was "left" of
        STOP_TIMEOUT reads as what the drain did not take."""
        now = self.loop.now()
        mercy_at = max(self.end - STOP_KILL_AFTER_SECONDS, now)
        budget = (f"STOP_TIMEOUT {self.arbiter.settings['STOP_TIMEOUT']} s: nginx's drain took "
                  f"{now - self.started:.1f} s of it, they had until {mercy_at - self.started:.1f} s")
        self._pools = self.arbiter.running_generations()
        if not self._pools:
            return self._helpers()
        for generation in self._pools:
            generation.stop(mercy_at, self.end, self._pool_gone, budget)

    def _pool_gone(self, generation, child: Child) -> None:
        self._note(child)
        if not any(generation.running for generation in self._pools):
            self._helpers()

    def _helpers(self) -> None:
        kill_at = min(self.loop.now() + STOP_KILL_AFTER_SECONDS, self.end + STOP_MARGIN_SECONDS / 2)
        self.arbiter.helpers.stop(kill_at, self._done)

    def _done(self) -> None:
        info("stopped")
        self.arbiter.finish(self.status, self.last_lines_by)

    def _note(self, child: Child) -> None:
        if failed(child) and not self.status:
            self.status = child.status


def death(what: str, child: Child, oom_kills_at_start: int, oom_kills_now: int | None) -> str:
    """How a server ended, for the last words: its exit code, or the signal
    that killed it, and whether the kernel's OOM killer did."""
    if child.status <= 128:
        return f"{what} exited with code {child.status}"
    said = f"{what} was killed by signal {child.status - 128}"
    # The OOM killer sends SIGKILL and nothing else.
    if child.status == 128 + signal.SIGKILL and (oom_kills_now or 0) > oom_kills_at_start:
        said += ", by the kernel's OOM killer (the container's memory limit)"
    return said


class Abort:
    def __init__(self, arbiter, what: str, child: Child):
        self.arbiter, self.loop = arbiter, arbiter.loop
        self.what, self.child = what, child
        self.death = death(what, child, int(arbiter.settings.derived["OOM_KILLS"]),
                           self.loop.system.oom_kills())
        self.last_words: str | None = f"container stopped: {self.death}"
        self._draining: list[Child] = []

    def not_started(self) -> None:
        """nginx ended before it held its ports: nothing was served."""
        error(f"nginx could not start (exit code {self.child.status}; its message is above: a port taken by "
              "another process?); not serving")
        self.last_words = None
        self._uwsgi()

    def begin(self) -> None:
        error(f"{self.death}; stopping the container (nginx answers what it can and writes its log)")
        if self.what == "uWSGI's master":
            # Its workers would go on for a moment with no master: they go
            # now, so that nginx answers their requests (502) and logs them.
            for worker in self.arbiter.orphans("flaskbox uWSGI worker"):
                self.loop.signal([worker], signal.SIGKILL)
            draining = [self.arbiter.nginx.child]
        else:
            # nginx's workers outlive their master (PID 1 adopts them).
            draining = self.arbiter.orphans("nginx: worker process", self.ended)
        self._drain([child for child in draining if child is not None and child.running])

    def _drain(self, children: list[Child]) -> None:
        """nginx's master, or the workers a dead master left, answer what
        they can for ABORT_DRAIN (SIGQUIT), then stop at once (SIGTERM: each
        worker still writes its buffered log lines), then are killed."""
        self._draining = children
        if not children:
            return self._uwsgi()
        started = self.loop.now()
        self.loop.signal(children, signal.SIGQUIT)
        self.loop.at(started + ABORT_DRAIN, lambda: self.loop.signal(children, signal.SIGTERM))
        self.loop.at(started + ABORT_DRAIN + ABORT_TERM, lambda: self.loop.signal(children, signal.SIGKILL))

    def ended(self, child: Child) -> None:
        """One that drains has ended: nginx's master (the arbiter, its owner,
        tells) or a worker it left (adopted by the abort, with this)."""
        if not any(other.running for other in self._draining):
            self._uwsgi()

    def _uwsgi(self) -> None:
        now = self.loop.now()
        self._pools = self.arbiter.running_generations()
        if not self._pools:
            return self._helpers()
        for generation in self._pools:
            generation.stop(now + ABORT_WORKERS, now + ABORT_UWSGI, self._pool_gone)

    def _pool_gone(self, generation, child: Child) -> None:
        if not any(generation.running for generation in self._pools):
            self._helpers()

    def _helpers(self) -> None:
        self.arbiter.helpers.stop(self.loop.now() + STOP_KILL_AFTER_SECONDS, self._done)

    def _done(self) -> None:
        if self.last_words:
            error(self.last_words)
        self.arbiter.finish(self.child.status or 1)
