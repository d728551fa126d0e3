"""A worker with a request in its line takes no more from the socket the
pool shares, and takes them again once its line is empty
(request/accepting.py). In process, on real epoll queues and sockets: a
paused queue is not woken by a connection, but is by its other
descriptors, and the connection waiting is seen at once when taken again.
In a container, uWSGI's own worker: each of its threads' queues holds the
listening socket with no events while a request waits in the line, and with
uWSGI's own once it has gone."""

from __future__ import annotations

import os
import select
import socket
import threading

import pytest
import requests
from gates import APP, listener_events

from flaskbox.request import accepting
from helpers import app_folder


@pytest.fixture
def listener(tmp_path):
    """The pool's socket, in its generation's folder (`tmp_path`)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "s"))
    server.listen(8)
    yield server, str(tmp_path / "s")
    server.close()


@pytest.fixture
def gate(tmp_path):
    return accepting.Accepting(str(tmp_path), threads=1)


@pytest.fixture
def queue(listener):
    """An epoll queue as a uWSGI thread's: the listening socket and a pipe (its stop pipe)."""
    server, _ = listener
    read, write = os.pipe()
    poller = select.epoll()
    poller.register(server.fileno(), select.EPOLLIN | select.EPOLLPRI | select.EPOLLHUP)
    poller.register(read, select.EPOLLIN)
    yield poller, read, write
    poller.close()
    os.close(read)
    os.close(write)


def test_the_queues_holding_the_pools_socket_are_found_and_nothing_else(tmp_path, listener, queue):
    server, path = listener
    poller, read, _ = queue
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    # The app's own server (an exporter's, say), listening outside the pool's folder.
    (tmp_path / "app").mkdir()
    own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    own.bind(str(tmp_path / "app" / "s"))
    own.listen()
    other = select.epoll()  # a connected socket, a pipe, the app's listener: none of the pool's
    for fd in (client.fileno(), read, own.fileno()):
        other.register(fd, select.EPOLLIN)
    try:
        # As the kernel shows them: with EPOLLERR, which it always reports.
        events = select.EPOLLIN | select.EPOLLPRI | select.EPOLLHUP | select.EPOLLERR
        assert accepting.queues(str(tmp_path)) == [(poller.fileno(), server.fileno(), events)]
    finally:
        other.close()
        own.close()
        client.close()


def test_a_paused_queue_is_not_woken_by_a_connection_and_sees_it_once_taken(listener, queue, gate):
    server, path = listener
    poller, _, _ = queue
    woken: list = []
    gate.pause()
    # A thread already waiting in the queue, as uWSGI's is when a line forms.
    waiter = threading.Thread(target=lambda: woken.extend(poller.poll(1.0)))
    waiter.start()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    waiter.join()
    assert woken == []  # a second passed: the connection waits in the socket's queue
    gate.take()
    assert poller.poll(1.0) == [(server.fileno(), select.EPOLLIN)]
    client.close()


def test_a_paused_queue_is_still_woken_by_its_other_descriptors(queue, gate):
    poller, read, write = queue
    gate.pause()
    os.write(write, b"x")  # uWSGI's stop pipe, its signals: they end a worker's wait as before
    assert poller.poll(1.0) == [(read, select.EPOLLIN)]
    gate.take()


def test_pausing_twice_and_taking_twice_restores_the_events_registered(tmp_path, listener, queue, gate):
    server, _ = listener
    poller, _, _ = queue
    before = accepting.queues(str(tmp_path))
    gate.pause()
    gate.pause()
    # None asked for: the kernel still shows EPOLLERR and EPOLLHUP, which it reports whatever is asked.
    paused = select.EPOLLERR | select.EPOLLHUP
    assert accepting.queues(str(tmp_path)) == [(poller.fileno(), server.fileno(), paused)]
    gate.take()
    gate.take()
    assert accepting.queues(str(tmp_path)) == before


def test_a_queue_closed_while_paused_is_left_alone(listener, gate):
    server, _ = listener
    poller = select.epoll()
    poller.register(server.fileno(), select.EPOLLIN)
    gate.pause()
    assert gate.paused
    poller.close()
    gate.take()  # no error: the descriptor is gone, nothing to set back
    assert gate.paused == []


# --- in uWSGI ----------------------------------------------------------------


def test_a_uwsgi_worker_with_a_request_in_its_line_stops_taking_them(containers, tmp_path):
    app = app_folder(tmp_path, APP)
    # One process, so the second request can only wait in its line (the
    # thread kept free over the limit takes it); one CPU, so that no idle
    # CPU lets it in over the limit (spare_cpu).
    c = containers.run(env={"UWSGI_PROCESSES": "1"}, docker_args=("-v", f"{app}:/app:ro", "--cpus", "1"))
    c.wait_until(lambda: "flaskbox: serving app on port" in c.logs(), "serving")
    registered = listener_events(c)
    # The queue of each thread not held before its first accept (newborn.py), watching the socket.
    assert len(registered) == 2 and all(events & select.EPOLLIN for events in registered), registered
    answers: dict = {}

    def get(name: str, seconds: float) -> None:
        answers[name] = requests.get(f"http://127.0.0.1:{c.port}/burn/{seconds}", timeout=60)

    first = threading.Thread(target=get, args=("first", 3.0))
    first.start()
    c.wait_until(lambda: c.logs().count("burn begun") == 1, "the first request let in", interval=0.05)
    second = threading.Thread(target=get, args=("second", 0.1))
    second.start()
    try:
        c.wait_until(lambda: not any(events & select.EPOLLIN for events in listener_events(c)),
                     "every queue paused while the second waits", timeout=2.5, interval=0.05)
        assert first.is_alive(), c.logs()[-2000:]  # the line is still there
    finally:
        first.join()
        second.join()
    assert all(answers[name].text.startswith("burnt ") for name in ("first", "second")), c.logs()[-2000:]
    # Every queue watching again: those at the start, and any a thread woken since made (the first
    # request's long burn doubled the limit, and woke a thread held before its first accept).
    c.wait_until(lambda: len(now := listener_events(c)) >= len(registered)
                 and all(events & select.EPOLLIN for events in now), "the queues taking requests again",
                 timeout=5)
