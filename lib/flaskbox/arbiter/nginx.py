"""nginx's master, as the arbiter runs it: started once a generation serves,
listening once it has written its pid file (it does so only after binding
every port); each change of its configuration judged by `nginx -t` first
(the static locations and the body limit a generation's app asked for, a
drop-in changed by a reload) and loaded with SIGHUP only when it changed, since nginx's old
workers then end the connections they hold."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from ..layout import APP_DIR, Runtime
from ..log import error, info
from ..start import body, static
from .loop import Child


def configuration(runtime: Runtime, app_dir: Path = APP_DIR) -> bytes:
    """What nginx's configuration is made of: the rendered files (the static
    location among them) and the drop-ins in /app/nginx.d, whole (some 60
    KB, kept to compare: a digest would load OpenSSL into PID 1, 4 MB)."""
    parts = []
    drop_ins = app_dir / "nginx.d"
    for path in [*sorted(runtime.nginx_dir.glob("*.conf")), *sorted(drop_ins.glob("*.conf")),
                 *sorted((drop_ins / "http").glob("*.conf"))]:
        try:
            parts.append(f"{path}\0".encode() + path.read_bytes() + b"\0")
        except OSError:
            continue
    return b"".join(parts)


class Nginx:
    def __init__(self, arbiter):
        self.arbiter, self.loop = arbiter, arbiter.loop
        self.runtime = arbiter.runtime
        self.child: Child | None = None
        self.listening = False
        self.loaded = b""  # its configuration as nginx loaded it
        # What install_app replaced (None: no file there), until it is served.
        self._previous: dict[Path, str | None] = {}
        self.body: body.Limit | None = None  # the body limit installed, said in the log
        self._body_before: body.Limit | None = None  # the one before it, until it is served
        self._mark = None  # its pid file, awaited while it starts

    @property
    def test(self) -> list[str]:
        return ["nginx", "-t", "-q", "-e", "stderr", "-c", str(self.runtime.nginx_conf)]

    def start(self, listening: Callable[[], None], ended: Callable[[Child], None]) -> None:
        """listening() once it holds its ports; ended(child) when it ends
        (before listening: a port taken since the settings were checked).
        OSError when it cannot be started."""
        self.runtime.nginx_pid.unlink(missing_ok=True)
        self.loaded = configuration(self.runtime)
        argv = ["nginx", "-e", "stderr", "-c", str(self.runtime.nginx_conf)]
        self._listening = listening
        # Watched before the start: a pid file written meanwhile wakes the loop.
        self._mark = self.loop.watch(self.runtime.nginx_pid, self._look)
        try:
            self.child = self.loop.spawn("nginx's master", argv, ended, env=self.arbiter.server_env)
        except OSError:
            self._mark.cancel()
            raise
        self._look()

    def _look(self) -> None:
        """Its pid file, made, then written and closed: listening once it
        holds nginx's pid (made, it is still empty)."""
        if self.listening:
            return
        if not self.child.running:
            return self._mark.cancel()
        try:
            written = self.runtime.nginx_pid.read_text().strip()
        except OSError:
            written = ""
        if written == str(self.child.pid):
            self._mark.cancel()
            self.listening = True
            self._listening()

    def judge(self, then: Callable[[bool], None]) -> None:
        """`nginx -t` on the configuration as written now: then(accepted)."""
        try:
            self.loop.spawn("nginx -t", self.test, lambda child: then(child.status == 0),
                            env=self.arbiter.server_env)
        except OSError as exc:
            error(f"cannot run nginx -t: {exc.strerror or exc}")
            then(False)

    def install_app(self, described: dict | None, then: Callable[[bool], None]) -> None:
        """What a generation's loaded app asked of nginx, where nginx.conf
        includes it: its static locations and its body limit (body.py),
        judged whole by `nginx -t`; unchanged, they are not judged (a
        drop-in nginx rejects must not hold back the app's code: apply_config
        names it). Rejected, the previous ones are put back (put_back_app).
        then(accepted). The body limit is said when it is new (at the start,
        or a reload's code that changed it). OSError when a file cannot be
        written (a full disk): the ones written are put back."""
        self._previous, self._body_before = {}, None
        if described is None:
            return then(True)
        settings = self.arbiter.settings
        chosen = body.limit(settings, described)
        wanted = {self.runtime.static_conf: static.location(settings, described, self.arbiter.conf_dir),
                  **body.files(settings, chosen)}
        previous = {}
        for place in wanted:
            try:
                previous[place] = place.read_text()
            except OSError:
                previous[place] = None

        def judged(accepted: bool) -> None:
            if not accepted:
                self.put_back_app()
            elif chosen != self.body:
                info(("SIGHUP: " if self.body is not None else "") + body.said(settings, chosen))
                self._body_before, self.body = self.body, chosen
            then(accepted)

        changed = {place: text for place, text in wanted.items() if text != previous[place]}
        try:
            for place, text in changed.items():
                self._previous[place] = previous[place]
                whole(place, text)
        except OSError:
            self.put_back_app()
            raise
        if not changed:
            return judged(True)
        self.judge(judged)

    def put_back_app(self) -> None:
        """The files install_app replaced, back: its new code is not served
        after all."""
        previous, self._previous = self._previous, {}
        if self._body_before is not None:
            self.body, self._body_before = self._body_before, None
        for place, text in previous.items():
            if text is None:
                continue
            try:
                whole(place, text)
            except OSError as exc:
                error(f"cannot put back {place} ({exc.strerror}; a full disk?): nginx keeps the "
                      "configuration it runs, and rejects the file at its next reload")

    def apply_config(self) -> None:
        """After a reload: nginx reloads its configuration if it changed (a
        drop-in, the static location), once `nginx -t` accepts it."""
        changed = configuration(self.runtime)
        if changed == self.loaded:
            return

        def judged(accepted: bool) -> None:
            if not accepted:
                error("SIGHUP: nginx rejected its configuration (message above); still serving the previous "
                      "one")
            elif self.child is not None and self.child.running and not self.arbiter.stopping:
                self.loaded = changed
                self.loop.signal([self.child], signal.SIGHUP)
                info("SIGHUP: nginx reloads its configuration, which changed")

        self.judge(judged)


def whole(place: Path, text: str) -> None:
    """Written whole or not at all: nginx never reads half a location."""
    part = place.with_name(place.name + ".part")
    part.write_text(text)
    part.replace(place)
