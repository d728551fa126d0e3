"""ADAPTIVE_THREADS' parked threads: the half of a worker's gate
(admission.py) that keeps the threads its limit does not need out of
uWSGI's accept loop, so that a request over the limit waits in the socket's
queue that every process shares, not in this worker's line.

A thread parks once its request has been answered (uWSGI's after-request
hook), and a new worker's thread before its first accept (newborn.py),
while more threads than wanted() are free. It waits on the gate's pipe: a
raised limit writes a byte for each thread it lets go; uWSGI's stop pipe (a
reload, max-requests), whose hang-up wakes its own threads, wakes them all.

So does the arbiter's byte on the generation's release FIFO, written before
it stops the pool: a thread held before its first accept, woken by uWSGI's
stop after a `docker stop` had closed the sockets, went on to add them to
its queue, and uWSGI logged an `epoll_ctl()` error for each (some fourteen a
worker, at every stop).
"""

from __future__ import annotations

import os
import select
import threading


class Parking:
    """Admission's parked threads. The gate sets `lock`, `room`, `threads`,
    `limit`, `inside`, `pid`, the pipes (started()) and `accepting`, and
    says them (say())."""

    def reset_parking(self) -> None:
        self.parked = 0
        self.born = 0  # of the parked, those held before their first accept (newborn.py)
        self.lines: set[int] = set()  # threads whose 5xx's line uWSGI writes after the hook (owes_line)
        self.owed = 0  # how many of them parked
        self.stopping = False
        self.wake_r = self.wake_w = self.stop_fd = self.release = None

    def wanted(self) -> int:
        """Threads left free to take requests: one over the limit, so that a
        request over it reaches the line, where the gate can tell at once
        that those let in only wait (all_waiting), and the line's pause keeps
        the rest in the socket; none at rest (limit 0)."""
        return min(self.threads, self.limit + 1) if self.limit else 0

    def free(self) -> int:
        return self.threads - self.parked

    def unpark(self, count: int) -> None:
        count = min(count, self.parked)
        if count > 0 and self.wake_w is not None:
            try:
                os.write(self.wake_w, b"w" * count)
            except OSError:
                pass

    def stop(self) -> None:
        """The worker stops: every parked thread goes back to uWSGI, which ends it once its requests ran."""
        self.stopping = True
        self.accepting.take()
        self.unpark(self.threads)

    def owes_line(self) -> None:
        """This thread answers a 5xx: uWSGI writes its line (log-5xx) once the thread leaves the hook."""
        self.lines.add(threading.get_ident())

    def open_release(self, fifo) -> None:
        """The generation's release FIFO, read (never emptied: its byte wakes every worker's threads)."""
        try:
            self.release = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self.release = None  # a pool the arbiter did not start: uWSGI's stop alone wakes them

    def released(self) -> bool:
        """Whether the arbiter has written the release byte: the pool is about to stop."""
        if self.release is None:
            return False
        poller = select.poll()
        poller.register(self.release, select.POLLIN)
        return bool(poller.poll(0))

    def parks(self) -> bool:
        """Under the lock: whether a thread free now parks (more are free than wanted)."""
        return self.free() > self.wanted() and not self.stopping and self.wake_r is not None \
            and self.pid == os.getpid() and not self.released()

    def after_request(self) -> None:
        """uWSGI's after-request hook, in the thread that served: its place
        freed for a request waiting for one; past wanted(), it parks until
        the limit is raised or the worker stops."""
        ident = threading.get_ident()
        with self.room:
            owes = self.every_line or ident in self.lines
            self.lines.discard(ident)
            if self.inside.pop(ident, None) is not None:
                self.ended += 1
                self.room.notify_all()  # the first in line is among them
            if not self.parks():
                return
            self.parked += 1
            self.owed += owes
        self.wait(owes=owes)

    def before_first_accept(self) -> None:
        """A thread uWSGI starts in this worker, before it makes its queue
        (newborn.py): past wanted(), it parks until woken."""
        self.started(request=False)
        with self.room:
            if not self.parks():
                return
            self.parked += 1
            self.born += 1
            self.say()  # a new worker's windows begin at its first request: none says it before
        self.wait(born=True)

    def wait(self, owes: bool = False, born: bool = False) -> None:
        """A thread counted in `parked`, until a byte on the gate's pipe or uWSGI's stop."""
        poller = select.poll()
        poller.register(self.stop_fd, 0)  # its hang-up only: uWSGI closed the write end
        poller.register(self.wake_r, select.POLLIN)
        if self.release is not None:
            poller.register(self.release, select.POLLIN)
        try:
            while not self.stopping:
                for fd, _ in poller.poll():
                    if fd in (self.stop_fd, self.release):
                        self.stop()
                        return
                    try:
                        os.read(self.wake_r, 1)
                        return
                    except BlockingIOError:
                        pass  # another parked thread took the byte
        finally:
            with self.lock:
                self.parked, self.owed, self.born = self.parked - 1, self.owed - owes, self.born - born
                if born:
                    self.say()
