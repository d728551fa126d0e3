"""How a worker hears that it is to stop, and ends its long-lived answers.
The arbiter's side is arbiter/generation.py (end_streams).

At a stop, or when a reload retires its code, the arbiter sends each
worker STOP_SIGNAL twice, having written by when in its generation's
streams-end file (streams.OPEN.end_file):

- at once: its WebSockets get a close frame (1001, "going away") and end;
  its event streams go on, counted. Most are answers that finish (an LLM's
  tokens, a workflow's progress), lost if ended early;
- a second before the budget's end (nginx's drain at a stop, RELOAD_GRACE
  at a reload): the event streams still open are ended cleanly, their last
  chunk sent, so that no client sees a cut; a WebSocket whose close frame
  still waits behind a frame its client does not read is cut.

Once every counted stream is over, the worker says how many finished and
how many were ended unfinished (streams.Open.left). Any other stream (an
export) is never ended as if complete: nginx's drain, or the end of the
retirement, cuts it where the client and the access log see it."""

from __future__ import annotations

import os
import signal
import threading
import time

from ..layout import STOP_STREAMS_SIGNAL
from ..log import log
from .streams import OPEN, StreamEnd

# What the arbiter sends each worker (layout.py). Ignored by default, so a
# worker with no handler yet (gevent's, before its first request) is
# unaffected.
STOP_SIGNAL = getattr(signal, f"SIG{STOP_STREAMS_SIGNAL}")
# The arbiter's timer fires at the time it wrote or just after; a signal
# read a little early is still the one that ends the streams.
EARLY = 0.25

# Re-entrant: a second signal may run the handler inside the first.
_telling = threading.RLock()
# Told when this worker is to end (a stop, a reload's retirement, a
# retirement of the watchdog's): ADAPTIVE_THREADS' parked threads go back
# to uWSGI (parking.py), which ends the worker once its requests have.
ENDING: list = []


def worker_ends() -> None:
    for told_too in list(ENDING):
        told_too()


def by_when() -> tuple[float, str, str]:
    """By when the event streams end, the occasion ("the stop", "the
    reload") and its budget, as the arbiter wrote them; unreadable (a full
    disk): now."""
    try:
        with open(OPEN.end_file or "") as file:
            at, occasion, budget = file.read().rstrip("\n").split("\t")
        return float(at), occasion, budget
    except (OSError, ValueError):
        return 0.0, "the stop", "its budget"


def told() -> list:
    """STOP_SIGNAL came: the first time, the WebSockets end and the event
    streams are counted; once it is time, the event streams still open are
    returned, told why they end, for the caller to end."""
    with _telling:
        at, occasion, budget = by_when()
        if not OPEN.stopping:
            begin(occasion, budget, at)
        if OPEN.ended or time.monotonic() < at - EARLY:
            return []
        OPEN.ended = True
        why = f"{occasion}'s budget ({budget}) is nearly spent"
        ending = OPEN.end_all(why)
        for websocket in list(OPEN.websockets.values()):
            if websocket.owed:  # still in a frame its client does not read: cut, as an export is
                websocket.cut()
    if ending:
        log(f"pid {os.getpid()}: ending the {len(ending)} event stream(s) still open, cleanly (their last "
            f"chunk): {why}")
    return ending


def begin(occasion: str, budget: str, at: float) -> None:
    worker_ends()
    OPEN.begin_counting(occasion, budget)
    websockets = list(OPEN.websockets.values())
    for websocket in websockets:
        websocket.end(occasion)
    streams = len(OPEN.counted)
    if websockets or streams:
        left = max(at - time.monotonic(), 0)
        log(f"pid {os.getpid()}: {occasion}: {len(websockets)} WebSocket(s) closed (1001, \"going away\"); "
            f"{streams} event stream(s) may finish within {left:.0f} s ({budget})")


def on_stop_signal(signum, frame) -> None:
    """Sync workers: a Python signal handler, which runs in the main thread;
    a stream being produced there ends at once, streams on other threads at
    their next part."""
    told()
    here = threading.get_ident()
    for stream in list(OPEN.streams):
        if stream.thread == here and stream.in_app and stream.reason is not None:
            raise StreamEnd(stream.reason)


def on_gevent_signal() -> None:
    """gevent workers: each stream still open is ended where it waits for
    the app's next part. Raised from the hub at its next turn, and only
    if it still waits there then: raised anywhere else (uWSGI writing the
    part, the app's own greenlets), it would escape as a traceback."""
    import gevent
    loop = gevent.get_hub().loop
    for stream in told():
        if stream.greenlet is not None:
            loop.run_callback(raise_if_waiting, stream)


def raise_if_waiting(stream) -> None:
    if stream.in_app and not stream.greenlet.dead:
        stream.greenlet.throw(StreamEnd(stream.reason))


def install_handler_once(gevent_mode: bool) -> None:
    if OPEN.handler_pid == os.getpid():
        return
    OPEN.handler_pid = os.getpid()
    if gevent_mode:
        import gevent
        gevent.signal_handler(STOP_SIGNAL, on_gevent_signal)
    else:
        signal.signal(STOP_SIGNAL, on_stop_signal)
        watch_for_the_stop_signal()


def watch_for_the_stop_signal() -> None:
    """Python runs a signal handler in the main thread, and only once that
    thread runs Python again: in a threaded worker it mostly waits in
    uWSGI's own loop, so the streams on the other threads would never hear
    of the stop. Python's C-level handler also writes the signal's number
    to a wakeup descriptor at once, from any thread: a thread of ours reads
    it and tells them. (Called in the main thread, as set_wakeup_fd needs.)"""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        # Signals are the main thread's to take, as uWSGI means (its handlers
        # look for the request of the thread they run in).
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            if int(STOP_SIGNAL).to_bytes(1, "little") in os.read(read_end, 64):
                told()

    threading.Thread(target=watch, name="flaskbox-stop-watch", daemon=True).start()
