"""The connections an app's import leaves open, found in uWSGI's master
before it forks the workers (pool/preload.py judges them).

A fork copies every descriptor: a socket the import connected (a database
connection in a pool, a client's kept-alive connection) is then one socket
in the master and in every worker. Their queries interleave on it, and a
worker reads another's answer: CKAN's SQLAlchemy pool, queried while its
app is made, gave answers that carried another request's data, and
psycopg2's "error with status PGRES_TUPLES_OK and no message from the
libpq". So the master lists the stream sockets opened since before the
import that have a peer (TCP, or a unix socket connected to a named one),
and settles each:

- closed: an idle connection in a pool whose library says how to start
  afresh, and opens a new one where it is next used, in each worker:
  SQLAlchemy's (Engine.dispose() before the fork, as its documentation
  advises for os.fork()), urllib3's (PoolManager.clear(), under requests'
  Session);
- left alone: one its library replaces by itself after a fork: redis-py's
  pool checks its pid before it hands a connection out, and never shuts a
  socket another process made;
- shared: anything else (a connection the app holds, psycopg2's own, one
  a pool has handed out and not had back): the app is loaded in each worker
  instead, as for threads.

Datagram sockets (statsd, syslog: a message at a time, no answer read),
listening ones (threads.listens) and a pair within the process (asyncio's
self-pipe: its peer has no name) are no connection a fork shares."""

from __future__ import annotations

import _socket
import fcntl
import gc
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .census import Census, sockets

# A line names at most this many connections; the rest are counted.
NAMED = 4
STREAMS = (_socket.SOCK_STREAM, _socket.SOCK_SEQPACKET)
FAMILIES = (_socket.AF_INET, _socket.AF_INET6, _socket.AF_UNIX)


@dataclass
class Connection:
    """A socket the import left connected to a peer."""
    inode: int
    peer: str
    where: str = ""   # where Python's socket.connect was called, if it was
    owner: str = ""   # the library (or pool) it belongs to, when known

    def __str__(self) -> str:
        about = [part for part in (self.owner, f"opened at {self.where}" if self.where else "") if part]
        return f"{self.peer} ({', '.join(about)})" if about else self.peer


def peer(fd: int) -> str:
    """The peer of a connected stream socket ("127.0.0.1:5432", "[::1]:6379",
    a unix socket's path, "@name" for an abstract one); "" for anything else.
    Asked through a duplicate, whose file flags are the socket's own: they
    are put back as they were (a socket object may make it non-blocking)."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        sock = _socket.socket(fileno=os.dup(fd))
    except OSError:
        return ""
    try:
        if sock.family not in FAMILIES or sock.type not in STREAMS:
            return ""
        if sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ACCEPTCONN):
            return ""
        address = sock.getpeername()
    except OSError:
        return ""  # not connected
    finally:
        sock.close()
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        except OSError:
            pass
    if sock.family == _socket.AF_INET:
        return f"{address[0]}:{address[1]}"
    if sock.family == _socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    if isinstance(address, bytes):  # abstract: a NUL, then the name
        return "@" + address[1:].decode(errors="replace") if address else ""
    return address


def left_open(census: Census) -> list[Connection]:
    """The sockets the import opened that are still connected to a peer."""
    found = []
    for inode, fd in sorted(census.new_sockets().items()):
        address = peer(fd)
        if address:
            found.append(Connection(inode, address, census.where_connected.get(inode, "")))
    return found


def _inode(fileno: Callable[[], int]) -> int | None:
    try:
        return os.fstat(fileno()).st_ino
    except (OSError, ValueError, TypeError, AttributeError):
        return None


# --- the libraries, found among the process's objects ----------------------------------------------

class Objects:
    """The process's objects, gathered once and grouped by type: one pass
    over them (a large app has millions), then a look at each type."""

    def __init__(self):
        self.by_type: dict[type, list] = {}
        for obj in gc.get_objects():
            self.by_type.setdefault(type(obj), []).append(obj)

    def of(self, module: str, name: str) -> list:
        """The objects of class `module.name`, if the app imported the
        module. By their type, never isinstance(): that asks a proxy for its
        __class__, which a lazy object (Django's SimpleLazyObject, wrapt's
        proxies) sets up by running the app's code."""
        cls = getattr(sys.modules.get(module), name, None)
        if not isinstance(cls, type):
            return []
        return [obj for kind, objects in self.by_type.items() if issubclass(kind, cls) for obj in objects]


def sqlalchemy_pools(objects: Objects) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """Each SQLAlchemy pool holding idle connections, and its engine's
    dispose(): it closes them and starts a new pool, which connects when
    next asked (in each worker). Not an asyncio pool (its close needs the
    app's loop) nor SQLite's (no socket; an in-memory database lives in
    its one connection)."""
    pools = set()
    for engine in objects.of("sqlalchemy.engine.base", "Engine"):
        pool = engine.pool
        if id(pool) in pools or getattr(pool, "_is_asyncio", False) or engine.dialect.name == "sqlite":
            continue
        pools.add(id(pool))
        idle = getattr(pool, "checkedin", None)
        if callable(idle) and idle():
            yield (f"SQLAlchemy's pool of {engine.url!r}",
                   "Engine.dispose(), as SQLAlchemy's documentation advises before os.fork()", engine.dispose)


def urllib3_pools(objects: Objects) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """Each urllib3 PoolManager (requests' Session has one an adapter) and
    its clear(): idle connections closed, new pools made when next asked."""
    for manager in objects.of("urllib3.poolmanager", "PoolManager"):
        if len(manager.pools):
            yield "urllib3's pool (requests' Session, say)", "urllib3's PoolManager.clear()", manager.clear


CLOSERS = (sqlalchemy_pools, urllib3_pools)


def redis_idle(objects: Objects) -> dict[int, str]:
    """The sockets of the idle connections in redis-py's pools: after a
    fork the pool sees its pid changed and starts afresh before it hands
    one out (ConnectionPool._checkpid), and a connection it drops closes
    only its own descriptor there. One handed out (a client of a single
    connection, a PubSub) is used without that check: it is shared."""
    found = {}
    for pool in objects.of("redis.connection", "ConnectionPool"):
        idle = getattr(pool, "_available_connections", None)
        if idle is None:  # BlockingConnectionPool: a queue, None where none is made yet
            idle = getattr(getattr(pool, "pool", None), "queue", ())
        for connection in list(idle or ()):
            inode = _inode(getattr(getattr(connection, "_sock", None), "fileno", None))
            if inode is not None:
                found[inode] = "redis-py's pool"
    return found


def drivers(objects: Objects) -> dict[int, str]:
    """Connections of database drivers written in C, which Python's
    socket.connect never sees: psycopg2's and psycopg's (libpq)."""
    found = {}
    for module, name, label in (("psycopg2.extensions", "connection", "psycopg2"),
                                ("psycopg", "Connection", "psycopg")):
        for connection in objects.of(module, name):
            if not getattr(connection, "closed", True):
                inode = _inode(connection.fileno)
                if inode is not None:
                    found[inode] = label
    return found


@dataclass
class Settled:
    """What became of the connections: closed (and by which library),
    left to a library that replaces them itself, or shared by the workers
    if the app were forked whole."""
    closed: list[Connection] = field(default_factory=list)
    renewed: list[Connection] = field(default_factory=list)
    shared: list[Connection] = field(default_factory=list)
    how: list[str] = field(default_factory=list)  # how the closed ones were closed
    held: list[str] = field(default_factory=list)  # SQLAlchemy pools with connections handed out


def settle(found: list[Connection], close: bool = True) -> Settled:
    """Closes what a library can open again, in each worker (if `close`:
    not for an app loaded in each worker anyway, whose connections are only
    named), and sorts the rest. Looks through the process's objects once (a
    few tenths of a second in a large app), and only for an app that left a
    connection."""
    objects = Objects()
    settled = Settled()
    # Before the closers, which give each engine a new pool.
    for engine in objects.of("sqlalchemy.engine.base", "Engine"):
        out = getattr(engine.pool, "checkedout", None)
        if callable(out) and out() and repr(engine.url) not in settled.held:
            settled.held.append(repr(engine.url))
    by_inode = {connection.inode: connection for connection in found}
    for closer in CLOSERS if close else ():
        for owner, how, close in closer(objects):
            before = set(sockets())
            try:
                close()
            except Exception:
                continue  # what it did not close stays, and is judged below
            for inode in sorted(before - set(sockets())):
                if inode in by_inode:
                    connection = by_inode.pop(inode)
                    connection.owner = owner
                    settled.closed.append(connection)
                    if how not in settled.how:
                        settled.how.append(how)
    renewed, named = redis_idle(objects), drivers(objects)
    for inode, connection in by_inode.items():
        connection.owner = connection.owner or renewed.get(inode) or named.get(inode, "")
        (settled.renewed if inode in renewed else settled.shared).append(connection)
    if not settled.shared:
        settled.held = []  # handed out, and given back since, or not on a socket
    return settled


def named(connections: list[Connection]) -> str:
    """The connections, the first NAMED of them by peer and owner."""
    names = ", ".join(map(str, connections[:NAMED]))
    more = f" and {len(connections) - NAMED} more" if len(connections) > NAMED else ""
    return f"{names}{more}"
