"""The gates with no limit: every request runs as soon as it comes. Timed
keeps each kind's time for REQUEST_TIMEOUT's estimate (sync, with
ADAPTIVE_THREADS=0, one thread or STICKY_CLIENTS); Untimed keeps nothing
(gevent). The gate with a limit: admission.Gate."""

from __future__ import annotations

from time import monotonic

from .deadline import Times


class Timed:
    """No limit (ADAPTIVE_THREADS=0, one thread, STICKY_CLIENTS): every
    request runs at once; its time is still kept for REQUEST_TIMEOUT's
    estimate (serve.Serve.waited_long)."""

    limited = False

    def __init__(self, times: Times):
        self.times = times

    def take(self, request) -> bool:
        if request.times is None:
            request.times = self.times.at_entry(request.environ)
        request.entered = monotonic()
        return True

    def enter(self, request, left: float) -> bool:
        return self.take(request)

    wait = enter

    def too_late(self, request, now: float) -> bool:
        return self.times.too_late(request.times, request.waited, now)

    @staticmethod
    def owes_line() -> None:
        return None

    def leave(self, request, ident: int | None = None, whole: bool = False) -> None:
        entered = request.entered
        if entered is not None:
            request.entered = None
            now = monotonic()
            times = request.times = self.times.at_leave(request)
            self.times.took(times, now - entered, False, now)


class Untimed:
    """gevent's workers: every request is taken at once, and REQUEST_TIMEOUT
    bounds the handler itself (serve.GeventServe): nothing to keep."""

    limited = False
    times = None

    @staticmethod
    def take(request) -> bool:
        return True

    @staticmethod
    def enter(request, left: float) -> bool:
        return True

    wait = enter

    @staticmethod
    def leave(request, ident: int | None = None, whole: bool = False) -> None:
        return None

    @staticmethod
    def owes_line() -> None:
        return None
