"""A worker the watchdog retires runs the app's exit handlers (an SDK's
last flush) to their end, within its budget, and only once, whichever exit
comes first: the watchdog's own (a stuck request keeps uWSGI's from ever
coming) or uWSGI's (its requests all ended). Each case runs in a process of
its own, which the exit ends."""

from __future__ import annotations

import subprocess
import sys
import time

from flaskbox.request import guards
from helpers import REPO

HEAD = """
import atexit, os, sys, threading, time
from flaskbox.request import guards
watchdog = guards.Watchdog(5)
watchdog.retiring = time.monotonic()
guards.exit_budget = lambda: {budget}
def flush():
    print(f"flush start {{os.getpid()}}", flush=True)
    time.sleep({flush})
    print(f"flush end {{os.getpid()}}", flush=True)
atexit.register(flush)
"""


def run(body: str, budget: float, flush: float) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HEAD.format(budget=budget, flush=flush) + body],
                          env={"PYTHONPATH": str(REPO / "lib"), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def test_the_watchdog_exit_runs_the_handlers_to_their_end():
    done, _ = run("watchdog.leave()\nprint('not reached')", budget=5, flush=0.8)
    assert done.returncode == guards.QUIET_EXIT, done
    assert done.stdout.count("flush start") == 1 and done.stdout.count("flush end") == 1, done
    assert "not reached" not in done.stdout
    assert "past its budget" not in done.stderr + done.stdout


def test_handlers_past_the_budget_are_ended_and_named():
    done, took = run("watchdog.leave()", budget=1, flush=30)
    assert done.returncode == guards.QUIET_EXIT, done
    assert "flush start" in done.stdout and "flush end" not in done.stdout, done
    said = done.stderr + done.stdout
    assert "past its budget" in said and "WORKER_RELOAD_MERCY" in said, said
    assert took < 10


def test_uwsgis_exit_first_runs_them_once_and_the_watchdog_waits():
    # The process's own exit (uWSGI's, once every request has ended) takes
    # the handlers first; the watchdog, coming to leave meanwhile, waits
    # for it instead of running them again or cutting them short.
    body = """
watchdog.claim_exit_first()
def late_leave():
    time.sleep(0.3)
    watchdog.leave()
threading.Thread(target=late_leave, daemon=True).start()
"""
    done, _ = run(body, budget=5, flush=0.8)
    assert done.returncode == 0, done
    assert done.stdout.count("flush start") == 1 and done.stdout.count("flush end") == 1, done


def test_the_watchdog_first_keeps_the_process_exit_from_running_them_again():
    body = """
watchdog.claim_exit_first()
threading.Thread(target=watchdog.leave, daemon=True).start()
time.sleep(0.3)
"""
    done, _ = run(body, budget=5, flush=0.8)
    assert done.returncode == guards.QUIET_EXIT, done
    assert done.stdout.count("flush start") == 1 and done.stdout.count("flush end") == 1, done

