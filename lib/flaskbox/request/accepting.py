"""A worker stops taking requests from the socket the pool shares while
its own line (admission.py) is not empty, and takes them again once it is.

A worker keeps free one thread over its limit (parking.py): the request
it takes waits in the line, where the gate can tell whether those let in
only wait. Paused, the worker's threads wait in uWSGI's own loop and the
next requests stay in the shared queue for a worker with room. A thread
held before its first accept (newborn.py) makes its queue once woken:
pause() looks for it then.

uWSGI gives Python no hook in a thread's accept loop. Each of its threads
has an epoll queue of its own that holds the listening socket, and one
thread of a worker at a time waits in its queue (uWSGI's thunder_mutex,
per worker when thunder-lock is off): so every queue is paused, never
some, as one paused queue would stop the whole worker. Pausing
sets that socket's events there to none (EPOLL_CTL_MOD), and taking again
sets back the events uWSGI registered: the registration itself is never
removed, so a pause that fails halfway leaves a queue as it was, and the
queue's other descriptors (uWSGI's stop pipe, its signals) wake the thread
as before. Anything unexpected (no queue found, /proc unreadable) leaves
the worker taking requests as it would without this."""

from __future__ import annotations

import os
import select
import socket
import threading

FD_DIR = "/proc/self/fd"
INFO_DIR = "/proc/self/fdinfo"


def listening(fd: int, within: str) -> bool:
    """Whether `fd` is a unix socket in the folder `within` (the pool's
    generation: not one the app listens on) that accepts connections."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            return sock.family == socket.AF_UNIX and os.path.dirname(str(sock.getsockname())) == within \
                and bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def queues(within: str, fd_dir: str = FD_DIR, info_dir: str = INFO_DIR) -> list[tuple[int, int, int]]:
    """(epoll fd, listening fd, its events as the kernel shows them) of each
    epoll queue of this process that holds a socket of the pool's (bound in
    `within`), registered with the socket's own number as its data (as
    uWSGI registers it)."""
    found = []
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"{info_dir}/{name}") as info:
                lines = info.read().splitlines()
        except OSError:
            continue  # closed meanwhile
        for line in lines:
            fields = line.split()
            # tfd:        3 events:       19 data:                3  pos:0 ...
            if len(fields) >= 6 and fields[0] == "tfd:" and fields[2] == "events:" and fields[4] == "data:":
                fd, events, data = int(fields[1]), int(fields[3], 16), int(fields[5], 16)
                # epoll_data.fd: the low 32 bits (the rest may be anything, as C left them)
                if data & 0xFFFFFFFF == fd and listening(fd, within):
                    found.append((int(name), fd, events))
    return found


class Accepting:
    """Whether this worker's threads take requests from the pool's socket in
    `within` (None: always). Its queues are looked for until there is one
    for each of its `threads` that made one, then kept: uWSGI's last the
    worker's life."""

    def __init__(self, within: str | None, threads: int):
        self.within, self.threads = within, threads
        self.lock = threading.Lock()
        self.found: list[tuple[int, int, int]] = []
        self.paused: list[tuple[int, int, int]] = []  # what pause() changed: (epoll fd, fd, events)

    def pause(self, made: int | None = None) -> None:
        """Takes no more requests, on every queue found: looked for again
        while fewer than `made` (the threads that have made theirs: those
        held before their first accept have none yet) were."""
        with self.lock:
            if self.paused or self.within is None:
                return
            if len(self.found) < (self.threads if made is None else min(made, self.threads)):
                try:
                    self.found = queues(self.within)
                except OSError:
                    return
            self.paused = [(epfd, fd, events) for epfd, fd, events in self.found if set_events(epfd, fd, 0)]

    def take(self) -> None:
        """Takes requests again, on every queue pause() changed."""
        with self.lock:
            for epfd, fd, events in self.paused:
                set_events(epfd, fd, events)
            self.paused = []


def set_events(epfd: int, fd: int, events: int) -> bool:
    """EPOLL_CTL_MOD on uWSGI's queue, through a copy of its descriptor (an
    epoll object closes the one it holds)."""
    try:
        queue = select.epoll.fromfd(os.dup(epfd))
    except OSError:
        return False
    try:
        queue.modify(fd, events)
        return True
    except OSError:
        return False
    finally:
        queue.close()
