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


def test_a_thread_that_only_waits_for_the_main_threads_end_is_told_apart():
    # python-oracledb's close_pools_gracefully: main_thread().join(), then
    # it closes the pools. Another thread waiting on something else is not.
    stop = threading.Event()
    with Census() as census:
        threading.Thread(target=threading.main_thread().join, name="close_pools", daemon=True).start()
        threading.Thread(target=stop.wait, name="scheduler", daemon=True).start()
    try:
        left = {thread.name: thread for thread in threads.left(census)}
        assert left["close_pools"].ends_with_it and not left["scheduler"].ends_with_it
        line = threads.end_with_it([left["close_pools"]])
        assert line.startswith("the app's import left 1 thread(s) in uWSGI's master that only wait for its "
                               'end: "close_pools" (Python, started at ')
        assert line.endswith("the app stays loaded once, in the master")
    finally:
        stop.set()


def test_where_a_thread_started_never_names_the_import_system():
    # A compiled module (Cython's, as python-oracledb's) starts its thread as
    # it is imported: the frame that called start() is the import system's.
    code = compile("import threading\nthreading.Thread(target=wait, daemon=True).start()\n",
                   "<frozen importlib._bootstrap>", "exec")
    stop = threading.Event()
    spec = type("ModuleSpec", (), {"name": "oracledb.thin_impl"})()
    with Census() as census:
        exec(code, {"wait": stop.wait, "spec": spec})
    try:
        (left,) = threads.left(census)
        assert left.where.startswith("oracledb.thin_impl's import, from ") and "frozen" not in left.where
        assert "in test_where_a_thread_started_never_names_the_import_system" in left.where
    finally:
        stop.set()
