"""How long a sync worker's requests of each kind take once let in: their
time alone (the floor ADAPTIVE_THREADS measures its limit against,
admission.py) and their usual time now (REQUEST_TIMEOUT's estimate).

A kind is a request's method and the app's route that answered it (Flask's
`request.url_rule`, as Werkzeug leaves it in the environ): one slow page
says nothing of another, and /dataset/<name> is one kind however many
datasets there are. The route is known only once the app has run, so a
path is mapped to it at its first request, and that request counts as of
no kind yet (PENDING). An app without routes (not Flask's) goes by its
paths, each segment with a digit in it one placeholder (/users/12 and
/users/34 alike). A request's time is the time it held its place in the worker:
from being let in to its answer's start (the usual answer's first part, a
stream's generator handed back, an exception), which is what the place
costs the others.

- First: a process's first request of a kind may pay the set-ups the app
  makes on first use (a template compiled, connections opened: CKAN's
  first page took 8.6 s, its next ones 0.06 s). One of SETUP or more is
  kept out of the kind's time alone, which it would hold up (letting
  everything in); a quicker one counts, for a kind run beside others from
  then on may not run alone again for a while. It starts the usual time,
  until the next shows it was a set-up: then the usual time starts again
  from that one, and does not refuse, for dozens of requests, what waited.
- Alone: the mean of the kind's last three requests that had the worker to
  themselves (none let in beside them from start to end). The mean, not a
  median: what the limit compares with it is the sum of many requests'
  times, and a page whose times vary (an API's long tail) has a mean above
  its median; held against its median, requests that only waited looked
  late, and the limit settled at a third of the threads they could use.
  Nothing else moves it: a request run beside others is slower by what
  the limit is there to measure.
- Usual: an exponential mean of all its recent times and of how far each
  strayed from it, RFC 6298's smoothed round-trip time and its variation
  (weights 1/8 and 1/4): a request that waited so long for a worker that
  its kind's usual time and four spreads would take it past REQUEST_TIMEOUT
  is refused with 503 when a worker takes it (and again as it gets its
  place), rather than started only to run past its deadline (issue 69:
  under overload, Keystone's logins let in with a second left of their 30
  each answered 504, the CPU they took wasted). The mean and its spread,
  not the longest: a refusal is for a request that would miss its
  deadline as the pool runs now (issue 80: privacyIDEA's logins were
  refused by the longest of their last times and a quarter, after 23 s,
  where their own gunicorn answered them in 29).
  The spreads add at most the usual time again: one time far off the
  usual adds a quarter of how far it strayed to the spread, so four
  spreads stood for that one request's excess, and a login of 20 ms that
  once waited 2 s on its database was expected to take 2.3 s. Refusals
  leave no time, so nothing measured the kind again: with a 3 s deadline
  every login after it that had waited was refused until the estimate was
  forgotten (16 to 34 refusals for 18 stalls, 6 clients: issue 79).
  Nor do they take more than half of what the usual time leaves of
  REQUEST_TIMEOUT: a kind whose usual time is near the deadline (an
  export of 20 s of 30) still lets in what waited less than half the rest,
  and is measured again; with the whole rest, every request of it that
  had waited at all was refused, and left no time to correct the word.
  A kind's usual time is forgotten REQUEST_TIMEOUT after its last request
  ended: refused requests leave no time, and a word that refused them all
  would otherwise stand for ever.

A kind whose first request, alone, took SETUP seconds or more, and five
times its later ones, paid the app's own set-up on the process's first
request of it (Keystone's policy engine, CKAN's web assets): each process
pays it once, so the log says so once a process, with what it cost.

Kept per worker, at most KINDS kinds: past that many, a new kind takes the
place of the one whose last request is the oldest, so that a worker that
runs for weeks keeps the kinds its traffic has now (an app without routes
makes a kind of each slug it serves). test_answer_deadline.py drives every case.
"""

from __future__ import annotations

import os
import re
from collections import deque

from ..log import log
from .answers import Refusals

DIGIT = re.compile(r"\d")
# The kinds kept, at most: a path made of names no digit marks (a slug a
# page) makes a kind each; past this many, a new one takes the place of the
# one seen longest ago (a scan of them all, made only for a new kind).
KINDS = 256
# The weights of a new time in the usual one and in its spread (RFC 6298's
# alpha and beta), and the spreads added to the usual time to judge whether
# a request would miss its deadline (RFC 6298's K: with two, logins past a
# CPU quota's capacity let in near their deadline answered a 504 for every
# twenty-five 200s, as a neighbour's load grew after they were let in; with
# four, none, at the same goodput: docs/BENCHMARKS.md, "Overload").
USUAL_WEIGHT, SPREAD_WEIGHT = 0.125, 0.25
SPREADS = 4
# The requests alone whose mean is a kind's time alone: a page whose cost
# drifts as its data grows is followed within three.
ALONE_KEPT = 3
# A first request alone this long, and five times the kind's time alone
# after it, is the app's set-up on a process's first request: said once.
SETUP, SETUP_TIMES = 1.0, 5


def kind(environ) -> str:
    """A request's kind: its method and path, each segment with a digit in
    it one placeholder (/users/12 and /users/34 alike)."""
    path = environ.get("PATH_INFO", "")
    if DIGIT.search(path):
        path = "/".join("#" if any(char.isdigit() for char in part) else part for part in path.split("/"))
    return f"{environ.get('REQUEST_METHOD', '')} {path}"


def route(environ) -> str:
    """The app's route that answered a request (Flask's request.url_rule),
    while Flask's request is in the environ: its context takes it away
    before the app returns. "" if none matched (or not Flask's)."""
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    return rule.rule if rule is not None else ""


class Kind:
    """One kind's times, in seconds (0.0: none yet), and when its last ended."""

    __slots__ = ("alone", "usual", "spread", "last", "alones", "first")

    def __init__(self):
        # first: its first request's time (negative if others ran beside it).
        self.alone = self.usual = self.spread = self.last = self.first = 0.0
        # The last three alone, oldest first (a deque drops the oldest itself: no tuple made a request).
        self.alones: deque[float] = deque(maxlen=ALONE_KEPT)


PENDING = Kind()  # a path whose route is not known yet: measured as its route once it is
# Paths mapped to their route, at most (a slug a page makes a path each):
# past this many, the map starts again.
PATHS = 4096


class Times:
    """A worker's kinds and their times."""

    def __init__(self, timeout: float, processes: int = 1, routed: bool = False):
        self.timeout = timeout
        self.processes = processes
        self.routed = routed  # the app names the route of each request (Flask's url_rule)
        self.kinds: dict[str, Kind] = {}
        self.routes: dict[str, Kind] = {}  # a path (as kind() says it): its route's kind
        self.seen: dict[tuple[str, str], Kind] = {}  # a method and path as they came: its kind
        self.setup_said = False  # a process says its set-up once
        self.refusals = Refusals("its answer could not have started within REQUEST_TIMEOUT: it waited for "
                                 "a worker for longer than REQUEST_TIMEOUT less the usual time of its kind")

    def of(self, key: str) -> Kind:
        """The kind's record, made at its first request (in place of the
        one seen longest ago, past KINDS)."""
        kinds = self.kinds
        found = kinds.get(key)
        if found is None:
            if len(kinds) >= KINDS:  # (from a copy: another thread may make or drop one meanwhile)
                kinds.pop(min(list(kinds.items()), key=lambda item: item[1].last)[0], None)
            found = kinds[key] = Kind()
        return found

    def at_entry(self, environ) -> Kind:
        """The kind of a request let in: its route's, if its path has been
        seen; PENDING until then (an app without routes: its path's). A
        path seen before is looked up as it came (`seen`: most requests)."""
        try:  # (uWSGI sets both: subscripts, not a call each)
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        except KeyError:
            method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        found = self.seen.get((method, path))
        if found is not None:
            return found
        key = kind(environ)
        found = self.of(key) if not self.routed else self.routes.get(key, PENDING)
        if found is not PENDING:
            if len(self.seen) >= PATHS:
                self.seen.clear()
            self.seen[method, path] = found
        return found

    def at_leave(self, request) -> Kind:
        """The kind of a request that ran: PENDING becomes its route's (as
        request.Request.start_response read it), and its path is mapped to
        it for the next ones."""
        times = request.times
        if times is not PENDING:
            return times
        environ = request.environ
        method = environ.get("REQUEST_METHOD", "")
        found = self.of(f"{method} {request.route}" if request.route else f"{method} (no route)")
        if len(self.routes) >= PATHS:
            self.routes.clear()
        self.routes[kind(environ)] = found
        return found

    def took(self, times: Kind, seconds: float, alone: bool, now: float) -> None:
        """A request of this kind held its place `seconds`, alone in the worker or not."""
        if times is PENDING:
            return
        last, times.last = times.last, now
        if not last:  # its first
            times.first = seconds if alone else -seconds  # (negative: not alone)
            if alone and seconds < SETUP:  # a first of SETUP or more: perhaps a set-up
                times.alones.append(seconds)
                times.alone = seconds
            times.usual, times.spread = seconds, seconds / 2
            return
        if alone:  # the mean of its last ALONE_KEPT alone
            alones = times.alones
            alones.append(seconds)
            times.alone = sum(alones) / len(alones)
            if times.first >= SETUP and not self.setup_said:
                self.setup_seen(times)
        usual = times.usual
        if usual and now - last <= self.timeout and (usual < SETUP or usual != times.first
                                                     or usual < SETUP_TIMES * seconds):
            spread, strayed = times.spread, seconds - usual
            times.spread = spread + SPREAD_WEIGHT * ((strayed if strayed > 0.0 else -strayed) - spread)
            times.usual = usual + USUAL_WEIGHT * strayed
        else:  # none for REQUEST_TIMEOUT, or its first paid a set-up: afresh
            times.usual, times.spread = seconds, seconds / 2

    def setup_seen(self, times: Kind) -> None:
        """A kind whose first request, alone, took SETUP or more: once its
        time alone is known, the log says whether that first paid the app's
        set-up (once a process)."""
        first = times.first
        if len(times.alones) < ALONE_KEPT or first < SETUP_TIMES * times.alone:
            return
        self.setup_said = True
        name = next((key for key, kind in list(self.kinds.items()) if kind is times), "a request")
        log(f"worker pid {os.getpid()}: {name}'s first request here took {first:.1f} s alone, its next ones "
            f"{times.alone:.2f} s: a set-up the app makes on a process's first request, paid once by each "
            f"of the pool's {self.processes} processes (UWSGI_PROCESSES)")

    def usual(self, times: Kind, now: float) -> float:
        """Seconds a request of this kind usually takes once let in, as the
        worker runs now; 0 if not known (none yet, or none for REQUEST_TIMEOUT)."""
        return times.usual if now - times.last <= self.timeout else 0.0

    def expected(self, times: Kind, now: float) -> float:
        """The usual time and its spreads, at most twice the usual time and
        at most half of what the usual time leaves of REQUEST_TIMEOUT: what
        a request let in now is expected to take at the most."""
        usual = self.usual(times, now)
        return usual + max(0.0, min(SPREADS * times.spread, usual, (self.timeout - usual) / 2))

    def too_late(self, times: Kind, waited: float, now: float) -> bool:
        """Whether a request that has waited this long would run past
        REQUEST_TIMEOUT taking the time expected of it."""
        expected = self.expected(times, now)
        return expected > 0.0 and waited + expected > self.timeout
