"""How long a sync worker's answers take to start, from its recent ones:
a request that waited in the queue so long that its answer could not start
within REQUEST_TIMEOUT is refused with a 503 when a worker takes it
(serve.Serve.waited_long), rather than started only to run past its
deadline. Under overload, every request let in then finishes: Keystone's
logins (issue 69) were each let in with a second or two left of their 30,
each slowed by all the others, and every one of them answered 504 at the
deadline; the CPU they took delivered nothing.

The watchdog (guards.Watchdog) works the estimate out on its ticks; a
request only reads it, and adds its own time once its answer starts."""

from __future__ import annotations

from collections import deque

from .answers import Refusals

# The recent answers the estimate is the longest of, and the margin it is
# taken with: a request is let in only if its answer would start in time
# even taking a quarter longer than the slowest of them did. Under
# overload the answers let in finish close to the deadline, and each new
# one varies as the machine's neighbours come and go: on issue 69's
# stand-in their 90th percentile let one in 20 run past it, and their
# longest alone one in 70.
KEPT, MARGIN = 32, 1.25


class AnswerTimes:
    """Seconds this worker's recent answers took to start, from the moment
    the wrapper had the request to its answer's first part."""

    def __init__(self):
        self.recent: deque[float] = deque(maxlen=KEPT)
        self.expected = 0.0
        self.refusals = Refusals("its answer could not have started within REQUEST_TIMEOUT: it waited for "
                                 "a worker for longer than REQUEST_TIMEOUT less the time this worker's "
                                 f"answers take to start (the longest of its last {KEPT}, and a quarter)")

    def took(self, seconds: float) -> None:
        """A request's answer started (the usual answer's first part). A
        longer one counts at once (a new worker's first answers among
        them); a shorter estimate waits for the watchdog's tick."""
        self.recent.append(seconds)
        if seconds * MARGIN > self.expected:
            self.expected = seconds * MARGIN

    def update(self) -> None:
        """The estimate, anew (the watchdog's tick)."""
        self.expected = max(self.recent, default=0.0) * MARGIN

    def too_late(self, waited: float, limit: float) -> bool:
        """Whether a request that waited this long could not be answered
        within `limit` (REQUEST_TIMEOUT), its answer taking what this
        worker's take."""
        return self.expected > 0.0 and waited + self.expected > limit


# A gevent worker takes every request at once: a wait is not a queue's.
NEVER = AnswerTimes()
