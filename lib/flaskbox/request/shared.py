"""What a uWSGI worker knows of itself and shares with the others: its
process id, read once per fork, and numbers kept in memory every worker of
the pool shares (the disk admitted to the spool, spool.py; the threads a
client holds, outbound.py)."""

from __future__ import annotations

import multiprocessing
import os


class ThisProcess:
    """This process's id, read again at each fork (os.register_at_fork), not
    on every request: os.getpid() is a system call each time."""
    pid = os.getpid()


os.register_at_fork(after_in_child=lambda: setattr(ThisProcess, "pid", os.getpid()))


class WorkerRows:
    """Numbers every worker reads and writes: a row of `width` per uWSGI
    worker id, made in the master before the fork. A worker's own row is
    cleared the first time a new process takes its place (mine()), so a
    worker killed mid-answer leaves nothing counted behind."""

    def __init__(self, workers: int, width: int = 1):
        self.width = width
        # The fork context: the workers are forks of this process, and no
        # semaphore is left to a tracker process (Python 3.14 defaults to
        # forkserver, which would start one).
        self.values = multiprocessing.get_context("fork").Array("q", (workers + 1) * width)
        self.pid: int | None = None

    def mine(self, worker: int) -> range:
        """Worker `worker`'s row, cleared first if this process is new in
        its place. Called with the lock held (values.get_lock())."""
        row = range(worker * self.width, min((worker + 1) * self.width, len(self.values)))
        if self.pid != ThisProcess.pid:
            self.pid = ThisProcess.pid
            for index in row:
                self.values[index] = 0
        return row
