"""The disk nginx may spool responses to (RESPONSE_SPACE): a large response
leaves its worker at once, whatever its client's pace, if the disk budget
takes it (request.py asks, per response with a Content-Length larger than
nginx's memory buffers)."""

from __future__ import annotations

import os

from ..layout import RESPONSE_MEMORY_BYTES
from .shared import WorkerRows


class Spool(WorkerRows):
    """nginx cannot count what its buffered responses take together, and it
    unlinks each file as soon as it makes it, so the file system is the one
    true count: a large response is admitted if the space used on it since
    the start, plus what admitted responses still have to write (`pending`,
    bytes by uWSGI worker id, so that a burst of them all at once is
    counted), plus its own length, fits. Responses that fit in nginx's
    memory buffers never touch disk and are not counted."""

    MEMORY = RESPONSE_MEMORY_BYTES

    def __init__(self, path: str, space: int, workers: int):
        super().__init__(workers)
        self.path = path
        self.space = space
        self.free_at_start = self.free()

    @property
    def pending(self):
        """Bytes admitted and not yet handed to nginx, by worker."""
        return self.values

    def free(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def admits(self, length: int, worker: int) -> bool:
        if length <= self.MEMORY:
            return True
        pending = self.pending
        with pending.get_lock():
            self.mine(worker)
            used = max(self.free_at_start - self.free(), 0)
            if used + sum(pending) + length > self.space:
                return False
            pending[worker] += length
            return True

    def written(self, length: int, worker: int) -> None:
        """A response admitted is all in nginx's hands (uWSGI closed it)."""
        pending = self.pending
        with pending.get_lock():
            pending[worker] = max(pending[worker] - length, 0)
