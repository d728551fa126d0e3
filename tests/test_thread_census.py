"""The census of an app's import in uWSGI's master (userapp/threads.py), in
process: the threads it leaves, and the ports it listens on, which keep an
app preloaded (a second worker could not bind them again). The containers'
side: test_app_threads.py."""

from __future__ import annotations

import socket
import threading

from flaskbox.userapp import threads
from flaskbox.userapp.census import Census


def test_a_thread_left_is_named_with_where_it_was_started():
    stop = threading.Event()
    with Census() as census:
        threading.Thread(target=stop.wait, name="network-loop", daemon=True).start()
    try:
        left = threads.left(census)
    finally:
        stop.set()
    assert [thread.name for thread in left] == ["network-loop"]
    assert left[0].python and left[0].where.endswith(
        "test_thread_census.py, line 18, in test_a_thread_left_is_named_with_where_it_was_started")


def test_a_port_the_import_listens_on_is_found_and_a_connection_is_not():
    outside = socket.create_server(("127.0.0.1", 0))
    with Census() as census:
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(outside.getsockname())
    try:
        assert threads.listens(census) == [server.getsockname()[1]]
    finally:
        for sock in (server, client, outside):
            sock.close()
    assert threads.listens(census) == []


def test_the_line_of_an_app_kept_preloaded_names_the_port():
    left = [threads.Left("Thread-1 (serve_forever)", True, "/app/app.py, line 14, in <module>")]
    line = threads.kept(left, [9100])
    assert line.startswith('the app\'s import left 1 thread(s) running in uWSGI\'s master: "Thread-1 '
                           '(serve_forever)" (Python, started at /app/app.py, line 14, in <module>), and '
                           "listens on port(s) 9100")


def test_a_native_thread_a_fork_stops_is_not_counted():
    # As OpenBLAS's pthread_atfork handler does: stopped in the parent
    # before the fork, started again when next used.
    import os

    stop = threading.Event()
    with Census() as census:
        thread = threading.Thread(target=stop.wait, daemon=True)
        thread.start()
    os.register_at_fork(before=lambda: (stop.set(), thread.join()))
    assert len(threads.left(census)) == 1
    threads.fork_once()
    assert threads.left(census) == []


def test_a_trial_fork_whose_child_hangs_is_ended_in_its_bound():
    # An app's at-fork hook that waits on a lock another thread held at
    # the fork: the child never exits by itself. Without the bound the fork
    # never returns; the join's minute is only there to fail, not to time.
    import os

    hang = threading.Event()
    os.register_at_fork(after_in_child=lambda: hang.is_set() and threading.Event().wait())
    hang.set()
    try:
        forking = threading.Thread(target=threads.fork_once, kwargs={"wait": 0.3}, daemon=True)
        forking.start()
        forking.join(60)
        assert not forking.is_alive()
    finally:
        hang.clear()
