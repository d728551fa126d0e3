"""A WebSocket: the connection of a request that asked for an Upgrade,
which the app takes over (environ["werkzeug.socket"], as Werkzeug's dev
server provides it, which flask-sock and simple-websocket use). At a stop
or a retirement (stopping.py), and with gevent at STREAM_MAX_DURATION, it
gets a close frame, 1001 "going away", and its socket is shut down, so the
app's receive loop ends and the client knows the server went away."""

from __future__ import annotations

import _socket  # not gevent's: the close frame must never wait (WebSocket.end)
import os
import socket
import threading
import time

from .streams import OPEN

# A WebSocket close frame (FIN, opcode 8, 2 bytes, unmasked as a server's
# frames are) with status 1001, "going away".
CLOSE_GOING_AWAY = b"\x88\x02\x03\xe9"
# How long an ended WebSocket reads what the client still sends (its close
# frame) before the connection is closed. Closed with unread bytes, it would
# be reset instead: the client could lose the last frames sent to it, and
# nginx logs "Connection reset by peer" (seen on 1 Socket.IO disconnect in 2).
LINGER_SECONDS = 1.0


class WebSocket:
    """The connection of a request that asked for an Upgrade, for the app
    (environ["werkzeug.socket"], as Werkzeug's dev server provides it, which
    flask-sock and simple-websocket use) and for ending it. `taken` tells
    whether the app wrote on it: then the response is the app's, not uWSGI's."""

    def __init__(self, fd: int, what: str):
        self.fd = fd
        self.sock = socket.socket(fileno=os.dup(fd))
        # uWSGI's connections are non-blocking, which a socket made from one
        # does not know of: its recv() would fail at once with EAGAIN. A
        # blocking one (gevent's, under gevent, waits in the loop instead).
        self.sock.settimeout(None)
        self.what = what
        self.taken = False
        # Taken by uWSGI's own handshake (which sent the 101 itself).
        self.native = False
        # Called once, in the app's thread, as the app takes the connection
        # (request.Request.let_go: REQUEST_TIMEOUT watches the request until then).
        self.on_take = None
        self.closed = False
        self.timer = None  # gevent: ends it at STREAM_MAX_DURATION
        # Held while the app sends, so that the close frame goes between
        # its frames, never inside one: a large frame goes over the unix
        # socket in parts, and another thread's bytes could land between them.
        self.sending = threading.Lock()
        # The close frame is owed: end() came while the app was sending.
        self.owed = False

    def let_go(self) -> None:
        """The app is about to answer on the connection itself."""
        callback, self.on_take = self.on_take, None
        if callback is not None:
            callback()

    def take(self) -> None:
        if not self.taken:
            self.let_go()
            self.taken = True

    def send(self, data, *args):
        return self._sent(self.sock.send, data, args)

    def sendall(self, data, *args):
        return self._sent(self.sock.sendall, data, args)

    def _sent(self, how, data, args):
        """The app's send, under `sending`, and the close frame owed after it."""
        self.take()
        with self.sending:
            result = how(data, *args)
            if self.owed:
                self._close_frame()
        return result

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def end(self, reason: str) -> None:
        """Close frame (once the connection is a WebSocket) and shutdown,
        once; the app's own loop then ends. The frame goes only if it fits
        now: a client that stopped reading fills the buffers, and a wait
        for it held the stop's handling in the worker (stopping.py), its
        event streams' end with it, until nginx gave the client up."""
        if self.closed:
            return
        self.closed = True
        self.owed = self.taken
        if self.sending.acquire(blocking=False):
            try:
                if self.owed:
                    self._close_frame()
                else:
                    self.cut()
            finally:
                self.sending.release()
            return
        # The app is in the middle of a frame (in another thread, or this
        # one, which a signal's handler interrupted): its receive loop ends
        # now, and the close frame follows the frame (send, above). A client
        # that stopped reading holds it there until the budget's end (cut).
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def _close_frame(self) -> None:
        """The close frame owed, if it fits now, then the shutdown."""
        self.owed = False
        try:
            without_waiting(self.sock, CLOSE_GOING_AWAY)
        except OSError:
            pass  # full (a client that stopped reading) or gone: the shutdown alone
        self.cut()

    def cut(self) -> None:
        """The connection shut down both ways, a send under way too."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client is already gone

    def release(self) -> None:
        """Once the app is done with it. Taken: a lingering close (below).
        Not taken, the app answered as to any request (the route is no
        WebSocket, or it refused the upgrade): only this copy of the
        connection is closed, and uWSGI sends that answer on its own."""
        if not self.taken:
            self.closed = True
            self.sock.close()
            return
        if self.owed:  # end() came as the app's last frame went
            self._close_frame()
        self._linger()

    def done(self) -> None:
        """The request is over: no longer counted, released, its timer gone."""
        OPEN.websockets.pop(self.fd, None)
        OPEN.publish()
        self.release()
        if self.timer is not None:
            self.timer.kill(block=False)

    def _linger(self) -> None:
        """A lingering close: end our side (the client reads all we sent,
        then the end), read what the client still sends until it closes too
        or LINGER_SECONDS pass, then close."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            while self.sock.recv(65536) and time.monotonic() < deadline:
                pass
        except OSError:
            pass  # already shut down, the client is gone, or it lingered too long
        self.sock.close()


def without_waiting(sock, data: bytes) -> None:
    """What of `data` the connection takes now (MSG_DONTWAIT, on a copy of
    its descriptor that gevent does not wrap); its blocking mode, which the
    app's own calls share, stays as it is. BlockingIOError when full."""
    raw = _socket.socket(fileno=os.dup(sock.fileno()))
    try:
        raw.send(data, socket.MSG_DONTWAIT)
    finally:
        raw.close()


def mark_native_handshakes(uwsgi) -> None:
    """uWSGI's own WebSocket API (Flask-SocketIO's gevent_uwsgi mode) sends
    the 101 itself: note that the connection is a WebSocket from then on."""
    original = uwsgi.websocket_handshake

    def handshake(*args, **kwargs):
        websocket = OPEN.websockets.get(uwsgi.connection_fd())
        if websocket is None:
            return original(*args, **kwargs)
        websocket.let_go()
        result = original(*args, **kwargs)
        websocket.taken = websocket.native = True
        return result

    uwsgi.websocket_handshake = handshake
