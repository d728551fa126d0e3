"""The files side of the arbiter's fake system (arbiter_fakes.FakeSystem):
a mark a fake server writes wakes the wait only in a folder the arbiter
watches, as inotify's does (lib/flaskbox/arbiter/events.py), or at each
turn where there is no inotify (`watching` False); and what the
certificate's child (`tls-apply`) does."""

from __future__ import annotations

from pathlib import Path


class WatchedFiles:
    def start_watching(self) -> None:
        self.watched: set[Path] = set()  # the folders whose files wake the wait
        self.unwatched: str | None = None  # why there is no inotify (System.unwatched)
        self.watching = True
        self._written: list[Path] = []

    def write(self, path: Path, text: str) -> None:
        """A fake server's mark: written, and the wait woken if its folder
        is watched."""
        path.write_text(text)
        if path.parent in self.watched:
            self._written.append(path)

    def apply_certificate(self) -> bool:
        """What `tls-apply` does (certificates.main_apply), with the test's
        record: its verdict, the child's exit code."""
        from flaskbox.sidecars import certificates

        record = self.record
        return certificates.apply(record["TLS_CERT"], record["TLS_KEY"], self.runtime)

    # --- what the arbiter sees (system.System's interface) -------------------------------------
    def watch(self, folder: Path) -> None:
        self.watched.add(Path(folder))

    def unwatch(self, folder: Path) -> None:
        self.watched.discard(Path(folder))

    def written(self) -> list[Path] | None:
        written, self._written = self._written, []
        return written if self.watching else None
