"""The connections an app's import leaves open, in process
(userapp/connections.py): which sockets count, what they are named, and
that looking leaves them as they were. The containers' side, with a real
PostgreSQL and Redis: test_import_connections.py."""

from __future__ import annotations

import os
import socket
import sys
import threading

from flaskbox.pool import preload
from flaskbox.userapp import connections
from flaskbox.userapp.census import Census


def test_a_connection_is_found_with_its_peer_and_where_it_was_opened(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "db.sock"))
    unix.listen()
    with Census() as census:
        tcp = socket.create_connection(server.getsockname())
        local = socket.socket(socket.AF_UNIX)
        local.connect(str(tmp_path / "db.sock"))
    try:
        found = connections.left_open(census)
        port = server.getsockname()[1]
        here = "in test_a_connection_is_found_with_its_peer_and_where_it_was_opened"
        assert [(c.peer, c.where.rsplit(",", 1)[-1].strip()) for c in found] == [
            (f"127.0.0.1:{port}", here), (str(tmp_path / "db.sock"), here)]
        # The frame named is the test's, not socket.py's create_connection.
        assert found[0].where.startswith(__file__)
    finally:
        for sock in (tcp, local, server, unix):
            sock.close()


def test_what_a_fork_may_share_is_not_counted():
    server = socket.create_server(("127.0.0.1", 0))
    outside = socket.create_connection(server.getsockname())  # before the import: the image's own
    with Census() as census:
        listening = socket.create_server(("127.0.0.1", 0))
        datagram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        datagram.connect(("127.0.0.1", 9))  # statsd's, say: a message at a time
        pair = socket.socketpair()  # asyncio's self-pipe: both ends here
        unconnected = socket.socket()
    try:
        assert connections.left_open(census) == []
    finally:
        for sock in (server, outside, listening, datagram, *pair, unconnected):
            sock.close()


def test_looking_leaves_a_socket_blocking_and_the_class_as_it_was():
    # A default timeout makes a socket object made on a descriptor
    # non-blocking: the flags are the descriptor's own, shared with the dup.
    server = socket.create_server(("127.0.0.1", 0))
    socket.setdefaulttimeout(5)
    try:
        with Census() as census:
            client = socket.socket()
            client.settimeout(None)
            client.connect(server.getsockname())
        assert len(connections.left_open(census)) == 1
        assert client.getblocking() and os.get_blocking(client.fileno())
    finally:
        socket.setdefaulttimeout(None)
        client.close()
        server.close()
    assert "connect" not in socket.socket.__dict__ and "connect_ex" not in socket.socket.__dict__
    assert threading.Thread.start.__name__ == "start"


def test_a_connection_no_library_claims_is_shared():
    server = socket.create_server(("127.0.0.1", 0))
    with Census() as census:
        client = socket.create_connection(server.getsockname())
    try:
        settled = connections.settle(connections.left_open(census))
        assert [c.peer for c in settled.shared] == [f"127.0.0.1:{server.getsockname()[1]}"]
        assert settled.closed == settled.renewed == [] and settled.held == []
        assert client.fileno() >= 0  # nothing closed it
    finally:
        client.close()
        server.close()


def test_the_line_of_connections_closed_and_left_says_what_was_done():
    pool = "SQLAlchemy's pool of postgresql://app:***@db/app"
    closed = connections.Connection(1, "127.0.0.1:5432", owner=pool)
    renewed = connections.Connection(2, "127.0.0.1:6379", "redis/connection.py, line 9, in _connect",
                                     "redis-py's pool")
    settled = connections.Settled(closed=[closed], renewed=[renewed], how=["Engine.dispose()"])
    line = preload.preloaded(settled)
    assert line.startswith(f"the app's import left 2 connection(s) open in uWSGI's master: 127.0.0.1:5432 "
                           f"({pool}), 127.0.0.1:6379 (redis-py's pool, opened at redis/connection.py, "
                           f"line 9, in _connect). A fork would share each with every worker: closed {pool} "
                           "before the fork (Engine.dispose()), and each worker's pool opens")
    assert "left redis-py's pool alone: it checks its pid" in line
    assert line.endswith("The app stays loaded once, in the master, its memory shared")


def test_many_connections_are_counted_past_the_named_ones():
    many = [connections.Connection(n, f"10.0.0.{n}:5432") for n in range(6)]
    assert connections.named(many).endswith("10.0.0.3:5432 and 2 more")


class Pools:
    """A stand-in for redis-py's module: its ConnectionPool keeps idle
    connections in _available_connections, each with its socket in _sock."""

    class ConnectionPool:
        def __init__(self, *socks):
            self._available_connections = [type("Connection", (), {"_sock": sock})() for sock in socks]


class Lazy:
    """A lazy object, as Django's SimpleLazyObject: asking its __class__
    runs the app's code."""

    @property
    def __class__(self):
        raise AssertionError("the census set a lazy object up")


def test_redis_pys_idle_connections_are_renewed_and_a_lazy_object_is_never_set_up(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis.connection", Pools)
    server = socket.create_server(("127.0.0.1", 0))
    with Census() as census:
        idle = socket.create_connection(server.getsockname())
        held = socket.create_connection(server.getsockname())  # handed out: not in the pool's list
    pool, lazy = Pools.ConnectionPool(idle), Lazy()
    try:
        settled = connections.settle(connections.left_open(census))
        assert [(c.inode, c.owner) for c in settled.renewed] == [(os.fstat(idle.fileno()).st_ino,
                                                                 "redis-py's pool")]
        assert [c.inode for c in settled.shared] == [os.fstat(held.fileno()).st_ino]
    finally:
        for sock in (idle, held, server):
            sock.close()
    assert pool and lazy
