"""Guards of a uWSGI worker, per request, beyond what uWSGI 2.0 does itself.

Watchdog   REQUEST_TIMEOUT per request for sync workers: the stuck request
           is answered 504 (or, a stream gone silent, cut) and its worker
           retires gracefully; WORKER_MAX_MEMORY retires a worker that grew
           past it the same way.
LoopWatch  WORKER_CLASS=gevent: a process whose event loop is blocked for
           longer than REQUEST_TIMEOUT (a handler that never yields: CPU
           work, a blocking call gevent cannot patch) serves none of its
           other requests, so it is killed and replaced, as harakiri would;
           past WORKER_MAX_MEMORY it is replaced gracefully.

The master's own guard, over the workers it forks, is forks.py's.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

from ..log import error, log
from . import stacks, stopping
from .answers import answer_gateway_timeout, connection, shut_down
from .memory import MemoryCap
from .shared import ThisProcess
from .streams import OPEN

# uWSGI's exit code for a worker that leaves quietly: the master replaces it
# without calling it a crash (uwsgi.h, UWSGI_QUIET_CODE).
QUIET_EXIT = 29
# How often the watchdog looks: a twentieth of REQUEST_TIMEOUT (a 504 at most 5 % late),
# within these bounds (watch_every). Each look takes Python's lock from the request threads,
# so 30 s looks twice a second (docs/BENCHMARKS.md, "What the wrapper costs in a worker").
WATCH_EVERY_LEAST, WATCH_EVERY_MOST = 0.1, 0.5
# A request answered (or cut) past REQUEST_TIMEOUT whose thread has not come back within
# another REQUEST_TIMEOUT is stuck: its worker retires; after this long instead when every
# thread holds such a request (it serves nobody). The whole REQUEST_TIMEOUT first lets a
# stream's generator that sleeps between events, or a login a second or two of CPU late,
# come back and end by itself: retired after one second, such logins retired workers
# one after another, each new one, knowing no kind's time, letting requests in too late.
STUCK_AFTER = 1.0
# Longer than uWSGI takes from accepting a request to calling the wrapper.
ACCEPTED_WITHIN = 0.5
# The exit budget when uWSGI's worker-reload-mercy cannot be read (outside uWSGI: the tests).
EXIT_BUDGET = 60.0


def exit_budget() -> float:
    """Seconds a retired worker has, from its retirement, to finish its
    other requests and run the app's exit handlers: uWSGI's
    worker-reload-mercy as rendered (WORKER_RELOAD_MERCY, from
    REQUEST_TIMEOUT and RELOAD_GRACE, or UWSGI_WORKER_RELOAD_MERCY), the
    budget uWSGI itself gives a worker it recycles."""
    try:
        import uwsgi
        value = uwsgi.opt.get("worker-reload-mercy", b"")
        value = value[-1] if isinstance(value, list) else value
        return float(value.decode() if isinstance(value, bytes) else value)
    except (ImportError, AttributeError, ValueError):
        return EXIT_BUDGET


def watch_every(timeout: float) -> float:
    """Seconds between the watchdog's looks, for REQUEST_TIMEOUT `timeout`."""
    return min(max(timeout / 20, WATCH_EVERY_LEAST), WATCH_EVERY_MOST)


def successor() -> str:
    """What follows a retired worker: at a stop or a reload, none of its generation."""
    return f"it ends with {OPEN.occasion}" if OPEN.stopping else "a fresh worker replaces it"


class Watchdog:
    """REQUEST_TIMEOUT per request for sync workers, threaded or not (uWSGI
    2.0's harakiri timer is per process: every request on another thread
    reset it, and when it fired it took the other threads' requests down).

    A request past it is answered 504 at once, from here; its thread cannot
    be stopped from outside (a C call never sees an exception), so the worker
    retires: SIGHUP makes uWSGI stop giving it new requests, the requests on
    its other threads finish as usual, and then it exits and the master forks
    a fresh one. Only the stuck request is lost; it was already answered."""

    def __init__(self, timeout: float, memory_cap: int = 0, threads: int = 0):
        self.timeout = timeout
        self.threads = threads  # 0: not known
        self.gate = None  # ADAPTIVE_THREADS' (admission.Gate): its line, too, ends before a retired worker
        self.every = watch_every(timeout)
        self.memory_cap = memory_cap
        self.memory = MemoryCap(0)  # each worker's own, from its first request (new_worker)
        # The requests being watched, by thread id: only request.Request adds
        # and removes them (watch, unwatch, finish); this thread reads them.
        self.running: dict = {}
        self.started = False
        os.register_at_fork(after_in_child=self.forked)
        self.retiring: float | None = None  # since then
        self.lock = threading.Lock()
        # Whoever runs the app's exit handlers takes this first: the
        # watchdog (leave) or uWSGI's own exit (exit_began, an exit handler
        # of ours that runs before the app's), never both at once.
        self.exit_claim = threading.Lock()
        self.exit_runner: int | None = None  # the thread of leave's run
        self.connections: Callable[[], set] | None = None  # to its generation's sockets (wsgi.py)

    def new_worker(self) -> None:
        """The first request in a new worker (a fork of the master):
        request.Request.watch calls this before it notes its request in
        `running`."""
        with self.lock:
            if not self.started:
                self.started = True
                self.running.clear()
                self.retiring = None
                self.exit_claim = threading.Lock()
                self.memory = MemoryCap(self.memory_cap)
                self._start()

    def forked(self) -> None:
        """A fork (uWSGI's master makes each worker so): its watchdog is
        started by its first request."""
        self.started = False

    def _start(self) -> None:
        try:
            threading.Thread(target=self._watch, name="flaskbox-watchdog", daemon=True).start()
        except RuntimeError as exc:
            # No thread to be had (the pids limit, reached by something the
            # start did not count on): serve without the timeout rather than
            # fail the request.
            log(f"worker pid {os.getpid()}: no thread for the REQUEST_TIMEOUT watchdog ({exc}); its requests "
                "are served without one")

    def _watch(self) -> None:
        while True:
            time.sleep(self.every)
            try:
                self.look(time.monotonic())
            except Exception:  # one look's fault must not end REQUEST_TIMEOUT for the worker's life
                try:  # nor its line's, on a broken stderr
                    error(f"worker pid {os.getpid()}: a look of the REQUEST_TIMEOUT watchdog failed, it "
                          f"looks again:\n{traceback.format_exc()}")
                except Exception:
                    pass

    def look(self, now: float) -> None:
        """Requests past REQUEST_TIMEOUT answered; a stuck one or the memory cap retires the worker."""
        running = list(self.running.items())
        for ident, request in running:
            if request.expired_at is None and request.elapsed(now) > self.timeout:
                self._expire(request, now, ident)
        expired = [request for _, request in running if request.expired_at is not None]
        patience = STUCK_AFTER if 0 < self.threads <= len(expired) else max(STUCK_AFTER, self.timeout)
        stuck = [request for request in expired if now - request.expired_at > patience]
        if stuck and self.retiring is None:
            self._retire(stuck[0], now)
        if self.gate is not None:
            self.gate.report()
        grown = self.memory.over(now) if self.retiring is None else None
        if grown is not None:
            self._retire_for_memory(grown, now)
        if self.retiring is not None:
            self.ending(now)

    def ending(self, now: float) -> None:
        """A retiring worker's end, within exit_budget of its retirement: uWSGI's
        own, once every thread is done (answers it still sends too), unless a
        request answered 504 holds its thread: then this one, once the others
        are done (and those accepted as it stopped taking them: ACCEPTED_WITHIN)."""
        left = list(self.running.items())
        held = {ident for ident, request in left if request.expired_at is not None}
        budget = exit_budget()
        if now - self.retiring > budget:
            try:
                log(f"worker pid {os.getpid()}: {self.holding(len(left) - len(held), held)} still ran "
                    f"{budget:g} s after its retirement began, past its budget (uWSGI's worker-reload-mercy: "
                    "WORKER_RELOAD_MERCY); ended")
            finally:  # ended even if its line cannot be written
                self.quit()
        if held and len(held) == len(left) and now - self.retiring > ACCEPTED_WITHIN \
                and (self.gate is None or self.gate.idle(held)) and not self.sending(left):
            log(f"worker pid {os.getpid()} retired: its other requests have ended; {successor()}")
            self.leave()

    def sending(self, stuck: list) -> int:
        """Connections this worker holds besides the `stuck` requests': a file uWSGI's offload
        thread still sends, which uWSGI's own exit waits for, and leave() would cut."""
        if self.connections is None:
            return 0
        mine = self.connections()
        for _, request in stuck:
            try:
                mine.discard(str(os.fstat(getattr(request, "fd", None)).st_ino))
            except (OSError, TypeError):
                pass  # none, or closed: nothing of it to discount
        return len(mine)

    def holding(self, requests: int, held: set) -> str:
        """What held a retiring worker past its budget, as the log names it."""
        if self.exit_claim.locked():
            return "the app's exit handlers"
        if requests:
            return f"{requests} of its requests (their answers cut)"
        sending = max(len(set(self.gate.sent) - held) if self.gate is not None else 0,
                      self.sending([(ident, self.running.get(ident)) for ident in held]))
        return (f"{sending} answer(s) uWSGI was still sending (cut)" if sending else
                "uWSGI's own exit (an answer it was still sending, cut, or a thread of the app)")

    def _expire(self, request, now: float, ident: int) -> None:
        """504 if nothing of the response has gone out yet, else a cut the
        client can see (a streamed body's missing last chunk); then the log
        line, with the stack its thread had when the time ran out. One its
        thread answered since this look copied the registry is left alone:
        its connection is uWSGI's again, perhaps another client's by now."""
        claimed = request.expire(self.running, ident, now, connection)
        if claimed is None:
            return
        answered, conn = claimed
        frames = stacks.walk(stacks.thread_frame(ident))
        # Answered, it holds no place in the gate: a thread that never comes back would hold it for good.
        request.serve.gate.leave(request, ident)
        if conn is not None:
            with conn:
                if answered:
                    answer_gateway_timeout(conn, self.timeout)
                else:
                    shut_down(conn)
        what = stacks.named(request)
        stacks.say(f"{what} ran past REQUEST_TIMEOUT ({self.timeout:g} s): answered 504" if answered else
                   f"{what} sent nothing for REQUEST_TIMEOUT ({self.timeout:g} s) mid-answer: cut, visibly "
                   "(no last chunk; the access log says cut)", frames, stacks.waits(request.environ))

    def _retire(self, request, now: float) -> None:
        others = sum(1 for other in list(self.running.values()) if other.expired_at is None)
        log(f"{request.what} still holds its thread: worker pid {os.getpid()} takes no new requests and "
            f"ends once its {others} other request(s) end; {successor()}")
        self.retiring = now
        OPEN.replacing("stuck_request")
        self.claim_exit_first()
        self.stop_taking_requests()

    def _retire_for_memory(self, size: int, now: float) -> None:
        log(f"worker pid {os.getpid()} holds {size >> 20} MB, past WORKER_MAX_MEMORY "
            f"({self.memory.cap >> 20} MB): it takes no new requests and ends once its "
            f"{len(self.running)} request(s) end; {successor()}")
        self.retiring = now
        OPEN.replacing("memory")
        self.claim_exit_first()
        self.stop_taking_requests()

    def stop_taking_requests(self) -> None:
        """uWSGI's graceful stop of one worker: its threads take no new
        requests and finish the ones they have (and parked ones go on); its
        WebSockets are closed (1001, "going away": their clients reconnect
        to another worker), as at a stop."""
        stopping.worker_ends()
        for websocket in list(OPEN.websockets.values()):
            websocket.end("the worker's retirement")
        os.kill(os.getpid(), signal.SIGHUP)

    def claim_exit_first(self) -> None:
        """uWSGI ends a worker whose requests have all ended by itself, and
        its exit runs Python's exit handlers, newest first: exit_began,
        registered last, runs first, so that the two exits never run the
        app's handlers twice nor cut each other short."""
        atexit.unregister(self.exit_began)
        atexit.register(self.exit_began)

    def exit_began(self) -> None:
        """uWSGI's exit is running the exit handlers. If the watchdog
        already runs them (leave), this exit waits for leave's to end the
        process."""
        if self.exit_runner == threading.get_ident():
            return  # leave's own run
        if not self.exit_claim.acquire(blocking=False):
            while True:
                time.sleep(1)

    def leave(self) -> None:
        """Exit the worker, the master forks a fresh one: the app's exit
        handlers (an SDK's last flush: Sentry's, OpenTelemetry's) run to
        their end first, within what is left of the retirement's budget
        (exit_budget); past it the worker is ended, and the log says so. The
        stuck request's thread never returns, so uWSGI's own exit, which
        waits for every thread, never comes: this is the exit."""
        budget = exit_budget()
        deadline = (self.retiring or time.monotonic()) + budget
        pid = os.getpid()
        if not self.exit_claim.acquire(blocking=False):
            # uWSGI's exit runs them (exit_began): it ends the process.
            time.sleep(max(deadline - time.monotonic(), 0))
            self.past_budget(pid, budget)
        self.exit_runner = threading.get_ident()
        try:
            threading.Thread(target=self.past_deadline, args=(deadline, pid, budget),
                             name="flaskbox-exit-deadline", daemon=True).start()
        except RuntimeError as exc:
            log(f"worker pid {pid}: no thread for its exit's deadline ({exc}); it exits without running "
                "the app's exit handlers")
            self.quit()
        atexit._run_exitfuncs()
        self.quit()

    def past_deadline(self, deadline: float, pid: int, budget: float) -> None:
        time.sleep(max(deadline - time.monotonic(), 0))
        self.past_budget(pid, budget)

    def past_budget(self, pid: int, budget: float) -> None:
        log(f"worker pid {pid}: the app's exit handlers still ran {budget:g} s after its retirement "
            "began, past its budget (uWSGI's worker-reload-mercy: WORKER_RELOAD_MERCY, from "
            "REQUEST_TIMEOUT and RELOAD_GRACE); ended before they finished")
        self.quit()

    @staticmethod
    def quit() -> None:
        """uWSGI's quiet exit (QUIET_EXIT), with what Python still holds of
        the worker's output written first: os._exit does not flush it."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(QUIET_EXIT)


class LoopWatch:
    """A greenlet notes the time every second; a real OS thread (gevent's
    own threads are greenlets too, and would be blocked with the loop)
    checks that it keeps doing so."""

    running: dict = {}  # gevent.Timeout bounds each handler: none is registered here

    def __init__(self, timeout: float, memory_cap: int = 0, serving=lambda frame: None):
        self.timeout = timeout
        self.memory_cap = memory_cap
        # Which request's handler runs on a stack (stacks.serving): the one
        # that blocks the loop, named when it is killed.
        self.serving = serving
        self.pid = None
        self.loop_thread = 0  # the OS thread that runs gevent's loop, whose stack a block shows
        self.beat = time.monotonic()

    def start_once(self) -> None:
        if self.pid == ThisProcess.pid:
            return
        import gevent
        from gevent import monkey
        self.pid = ThisProcess.pid
        self.loop_thread = monkey.get_original("_thread", "get_ident")()
        self.beat = time.monotonic()
        # What the worker holds now, before its first request runs: read in
        # the watching thread, it raced that request (one that took 200 MB
        # made a 150 MB cap look below a fresh worker, and left it unapplied).
        memory = MemoryCap(self.memory_cap)
        gevent.spawn(self._beat)
        monkey.get_original("_thread", "start_new_thread")(self._watch, (memory,))

    def _beat(self) -> None:
        import gevent
        while True:
            self.beat = time.monotonic()
            gevent.sleep(1)

    def _watch(self, memory: MemoryCap) -> None:
        from gevent import monkey
        sleep = monkey.get_original("time", "sleep")
        replacing = None  # since then
        while True:
            sleep(1)
            grown = memory.over(time.monotonic())
            if grown is not None:
                log(f"worker pid {os.getpid()} holds {grown >> 20} MB, past WORKER_MAX_MEMORY "
                    f"({memory.cap >> 20} MB): replaced gracefully (its requests and the app's exit handlers "
                    "get uWSGI's worker-reload-mercy)")
                OPEN.replacing("memory")
                memory.cap = 0
                replacing = time.monotonic()
                os.kill(os.getpid(), signal.SIGHUP)
            if replacing is not None and time.monotonic() - replacing > exit_budget():
                # uWSGI bounds only the exits its master asks for.
                log(f"worker pid {os.getpid()}: its requests and the app's exit handlers still ran "
                    f"{exit_budget():g} s after its replacement began, past its budget (uWSGI's "
                    "worker-reload-mercy: WORKER_RELOAD_MERCY); ended before they finished")
                Watchdog.quit()
            blocked = time.monotonic() - self.beat
            if blocked > self.timeout + 1:
                frame = stacks.thread_frame(self.loop_thread)
                request = self.serving(frame)
                stacks.say(f"gevent's loop in worker pid {os.getpid()} has been blocked for {blocked:.0f} s, "
                           f"past REQUEST_TIMEOUT ({self.timeout:g} s): a handler that never yields (CPU "
                           "work, or a blocking call gevent cannot patch); killing the worker, and with it "
                           "its requests", stacks.walk(frame), stacks.blocks(request))
                OPEN.replacing("blocked_loop")
                os.kill(os.getpid(), signal.SIGKILL)
