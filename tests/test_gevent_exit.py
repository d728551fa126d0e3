"""gevent_exit.AtWorkerEnd, in process, with a stand-in for the uwsgi module
and gevent's Event: a gevent worker runs the app's exit handlers once, a
second call from uWSGI's gevent loop waits for that run, and the master
leaves them to Python's own exit. The container tests
(test_exit_handlers_gevent.py) prove it in uWSGI."""

from __future__ import annotations

import atexit
import sys
import types

import pytest

from flaskbox.pool import gevent_exit


class FakeUwsgi:
    def __init__(self, worker: int):
        self.worker = worker

    def worker_id(self) -> int:
        return self.worker


class FakeEvent:
    made: list = []

    def __init__(self):
        self.is_set = False
        self.waited = 0
        FakeEvent.made.append(self)

    def set(self) -> None:
        self.is_set = True

    def wait(self) -> None:
        self.waited += 1


@pytest.fixture
def ran(monkeypatch):
    monkeypatch.setitem(sys.modules, "gevent", types.ModuleType("gevent"))
    monkeypatch.setitem(sys.modules, "gevent.event", types.SimpleNamespace(Event=FakeEvent))
    FakeEvent.made.clear()
    calls: list[str] = []
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: calls.append("exit handlers"))
    return calls


def test_a_worker_runs_the_exit_handlers_once_and_a_second_call_waits_for_them(ran):
    uwsgi = FakeUwsgi(worker=1)
    uwsgi.atexit = lambda: ran.append("the app's uwsgi.atexit")
    gevent_exit.install(uwsgi)
    uwsgi.atexit()  # the last request's greenlet
    uwsgi.atexit()  # the main greenlet, once the loop ended
    assert ran == ["the app's uwsgi.atexit", "exit handlers"]
    [done] = FakeEvent.made
    assert done.is_set and done.waited == 1


def test_the_master_leaves_them_to_pythons_exit(ran):
    uwsgi = FakeUwsgi(worker=0)
    gevent_exit.install(uwsgi)
    uwsgi.atexit()
    assert ran == [] and FakeEvent.made == []
