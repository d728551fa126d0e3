"""The certificate and key nginx serves (TLS_CERT, TLS_KEY), kept as checked
copies in RUNTIME_DIR/tls: one folder per version, named by a digest of the
pair, and `current`, a link to the one in use, swapped in one rename.
nginx reads the files `current` names at each full handshake (tls.py), so a
renewal reaches the next handshake with no reload of nginx, whose old workers
would have to end the downloads and HTTP/2 connections they hold, and none
of the app.

apply()  copies the pair once it passes tls.check_files and swaps `current`
         to it; a pair that fails the check is named in the log and the one
         in use stays. Run at start (`prepare`), and at SIGHUP (`tls-apply`,
         a child of the arbiter's: PID 1 never loads OpenSSL).
watch()  applies each change of the files (certbot's renewal, cert-manager,
         a Kubernetes Secret or a Swarm secret updated in place) within
         WATCH_EVERY seconds of the moment they stop changing: a renewal
         writes the certificate and the key one after the other, and the
         pair in between does not match.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from .. import record
from ..layout import Runtime
from ..log import error, info, log
from ..start import tls

WATCH_EVERY = 0.5
# What a version's folder holds: nginx.conf's maps name them.
FILES = ("cert.pem", "key.pem")
# Versions kept besides the one in use: a handshake that began just before a
# swap still finds the files it was told about.
KEEP = 2


def digest(cert: str, key: str) -> str:
    sha = hashlib.sha256()
    for path in (cert, key):
        with open(path, "rb") as file:
            sha.update(file.read())
        sha.update(b"\0")
    return sha.hexdigest()[:16]


def in_use(runtime: Runtime) -> str | None:
    try:
        return os.readlink(runtime.tls_current)
    except OSError:
        return None


def apply(cert: str, key: str, runtime: Runtime, say=info) -> bool:
    """The pair in use from now on, if it passes the check; True when
    nothing was wrong (applied, or the same as in use). One apply at a time
    (a lock in RUNTIME_DIR/tls): the watcher and a SIGHUP's apply may meet
    on the same renewal, and two copies made into one folder could leave a
    half-copied pair in use."""
    try:
        tls.check_files(cert, key)
        version = digest(cert, key)
    except (tls.TLSError, OSError) as exc:
        error(f"TLS: {exc}; still serving the certificate loaded before")
        return False
    try:
        runtime.tls_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        with open(runtime.tls_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if in_use(runtime) == version and whole(runtime.tls_dir / version):
                return True
            install(cert, key, version, runtime)
    except OSError as exc:
        error(f"TLS: cannot keep a copy of the certificate in {runtime.tls_dir} ({exc}); still serving "
              "the one loaded before")
        return False
    say(f"TLS: serving the certificate in TLS_CERT={cert} (version {version}) from the next handshake on")
    prune(runtime, version)
    return True


def whole(folder) -> bool:
    return all((folder / name).is_file() for name in FILES)


def install(cert: str, key: str, version: str, runtime: Runtime) -> None:
    """Copies the pair into a folder of its own, then swaps `current` to it."""
    folder = runtime.tls_dir / version
    part = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=runtime.tls_dir))
    try:
        for source, name in zip((cert, key), FILES, strict=True):
            shutil.copyfile(source, part / name)
            (part / name).chmod(0o600)
        if folder.exists():
            shutil.rmtree(folder)
        part.rename(folder)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    link = runtime.tls_dir / ".current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(version)
    link.replace(runtime.tls_current)


def prune(runtime: Runtime, keep: str) -> None:
    versions = sorted((path for path in runtime.tls_dir.iterdir()
                       if path.is_dir() and not path.name.startswith(".") and path.name != keep),
                      key=lambda path: path.stat().st_mtime, reverse=True)
    for old in versions[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def stamp(cert: str, key: str) -> tuple:
    """What changes when either file does (followed through links, as a
    Kubernetes Secret's are)."""
    parts = []
    for path in (cert, key):
        try:
            found = os.stat(path)
            parts.append((found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns))
        except OSError:
            parts.append(None)
    return tuple(parts)


def watch(cert: str, key: str, runtime: Runtime, every: float = WATCH_EVERY) -> None:
    # Files replaced between the start's apply and this watcher's first
    # look would otherwise never be noticed: apply says nothing when they
    # are the pair in use.
    applied = stamp(cert, key)
    apply(cert, key, runtime, say=log)
    seen = applied
    while True:
        time.sleep(every)
        now = stamp(cert, key)
        if now != seen:
            seen = now  # still changing: wait until it holds still
            continue
        if now != applied:
            apply(cert, key, runtime, say=log)
            applied = now


def main() -> None:
    """`tls-watch`: one of the arbiter's helpers."""
    settings = record.load()
    cert, key = settings["TLS_CERT"], settings["TLS_KEY"]
    if cert and key:
        watch(cert, key, record.runtime())


def main_apply() -> bool:
    """`tls-apply`: the arbiter's SIGHUP, in a child of its own."""
    settings = record.load()
    cert, key = settings["TLS_CERT"], settings["TLS_KEY"]
    return not (cert and key) or apply(cert, key, record.runtime())
