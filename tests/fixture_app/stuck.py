"""The fixture app with handlers that wait for good where real ones do: on a
lock nobody gives back (a holder that died with it), and on a socket to a
server that never answers (a database that has stopped answering: here a
listener on 127.0.0.1 that never accepts). With gevent, patched, both yield
to the loop; blocked and spin block the whole process, as a driver's own
C call and CPU work do. REQUEST_TIMEOUT's log must name the line marked
`# waits` (tests/test_request_stacks.py finds its number here)."""

import socket
import sys
import threading
import time

from app import app  # noqa: F401  (the fixture app, for / and the rest)

# Taken at import, in the master: every worker's copy is held, for good.
HELD = threading.Lock()
HELD.acquire()


def silent_server(make=socket.socket):
    """A connection to a listener that never accepts nor answers: the
    kernel completes the handshake into its backlog, and nothing more."""
    listener = make()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    conn = make()
    conn.connect(listener.getsockname())
    return listener, conn


def started(what: str) -> None:
    print(f"stuck start {what}", file=sys.stderr, flush=True)


@app.get("/stuck/lock")
def stuck_on_lock():
    started("lock")
    HELD.acquire()  # waits: lock
    return "never\n"


@app.get("/stuck/socket")
def stuck_on_socket():
    listener, conn = silent_server()
    started("socket")
    conn.recv(1)  # waits: socket
    return "never\n"


@app.get("/stuck/blocked")
def stuck_blocking_the_loop():
    # gevent: the standard library's own socket, which gevent's patch does
    # not reach, as a C driver's: the whole process waits in recv.
    from gevent import monkey
    listener, conn = silent_server(monkey.get_original("socket", "socket"))
    started("blocked")
    conn.recv(1)  # waits: blocked
    return "never\n"


@app.get("/stuck/spin")
def stuck_spinning():
    started("spin")
    until = time.monotonic() + 600
    while time.monotonic() < until: pass  # noqa: E701  waits: spin
    return "never\n"
