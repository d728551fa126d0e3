"""WRITABLE_PATHS: files and folders an app writes next to its own code
(a `.data/` cache, a `secret_key` file), kept on the instance volume while
/app itself stays read-only and root's.

Each path P under /app becomes a symbolic link, made once in the image
(`RUN python3 -m flaskbox writable`, as root, in the app's Dockerfile), to
/app/instance/writable/<P relative to /app>. The app opens P as it always
did, and its writes land on the volume: they survive restarts and new
containers, under any uid that may write the instance folder, and on a
read-only root. A path with a trailing `/` is a folder; without, a file.

    link()     at build time: the links, and what the image shipped at those
               paths kept as seeds (/usr/local/share/flaskbox/seed)
    prepare()  at every start, as the serving user: each link's target ready
               (a folder made, a seed copied in the first time only), or the
               reason it cannot be, with the fix
    watch()    around the app's import: writes next to the code that the
               file system refuses, named once with the setting that fixes them

issue 22: a real app died at import on `/app/<pkg>/../.data`, and its
secret-key fallback failed silently, logging every user out at each restart.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..layout import APP_DIR, BAD_INPUT, FAILED

INSTANCE = APP_DIR / "instance"
TARGETS = INSTANCE / "writable"
SEEDS = Path("/usr/local/share/flaskbox/seed")
# The group that shares /app/instance (any uid in group 0 may write it).
FOLDER_MODE = 0o775


class WritableError(Exception):
    """A path cannot be kept on the volume; the message says how to fix it.
    code: BAD_INPUT for a setting the image does not match, FAILED for a
    volume that cannot be written."""

    def __init__(self, message: str, code: int = BAD_INPUT):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Entry:
    path: Path  # where the app writes, under /app
    folder: bool

    @property
    def relative(self) -> Path:
        return self.path.relative_to(APP_DIR)

    @property
    def target(self) -> Path:
        return TARGETS / self.relative

    @property
    def seed(self) -> Path:
        return SEEDS / self.relative


def normalize(value: str) -> str:
    """Each item made absolute and free of `..` (`/app/pkg/../.data/` is
    `/app/.data/`), its trailing `/` kept; items joined by spaces."""
    items = []
    for item in value.replace(",", " ").split():
        folder = item.endswith("/")
        path = os.path.normpath(item) if item.startswith("/") else item
        items.append(path + ("/" if folder and path != "/" else ""))
    return " ".join(items)


def valid(value: str) -> bool:
    """Absolute paths below /app, outside the instance folder (which is on
    the volume already)."""
    for item in value.split():
        path = Path(item.rstrip("/") or "/")
        if not item.startswith("/") or path == APP_DIR or APP_DIR not in path.parents:
            return False
        if path == INSTANCE or INSTANCE in path.parents:
            return False
    return True


def entries(value: str) -> list[Entry]:
    return [Entry(Path(item.rstrip("/")), item.endswith("/")) for item in value.split()]


# --- at build time -------------------------------------------------------------

def link(value: str) -> list[str]:
    """The links, made as root when the image is built; what was at a path
    already (a folder of defaults) becomes its seed. Safe to run again."""
    done = []
    for entry in entries(value):
        path = entry.path
        if path.is_symlink() and os.readlink(path) == str(entry.target):
            done.append(f"{path} -> {entry.target} (already)")
            continue
        if path.is_symlink():
            raise WritableError(f"{path} is a link to {os.readlink(path)}, not to {entry.target}: remove it")
        if path.exists():
            if path.is_dir() != entry.folder:
                kind, fix = ("a folder", f"write it {path}/") if path.is_dir() else \
                    ("a file", f"write it {path}, without the /")
                raise WritableError(f"WRITABLE_PATHS: {path} is {kind} in the image: {fix}")
            entry.seed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(entry.seed))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(entry.target, target_is_directory=entry.folder)
        seeded = ", seeded from the image's copy" if entry.seed.exists() else ""
        done.append(f"{path} -> {entry.target}{seeded}")
    return done


# --- at every start ------------------------------------------------------------

def _make_folder(folder: Path) -> None:
    """mkdir -p, each new level group-writable as /app/instance is, so that
    a later start under another uid of group 0 may write there too. Made
    with that mode rather than chmod-ed after: /app/instance is setgid, and
    a chmod by a uid outside group 0 would drop the inherited bit."""
    old = os.umask(0o002)
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    finally:
        os.umask(old)


def _copy_seed(seed: Path, target: Path) -> bool:
    """The image's copy onto the volume, group-writable like the folders
    made here: made new under umask 002 rather than copied with its modes
    (root's 755), and never chmod-ed (which would drop the setgid bit).
    Copied beside the target, then renamed into place, so that replicas
    starting together on one volume never see half a copy: False when
    another got there first."""
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    old = os.umask(0o002)
    try:
        if not seed.is_dir():
            shutil.copyfile(seed, part, follow_symlinks=False)
        else:
            part.mkdir(mode=FOLDER_MODE)
            for root, dirs, files in os.walk(seed):
                here = part / Path(root).relative_to(seed)
                for name in dirs:
                    (here / name).mkdir(mode=FOLDER_MODE)
                for name in files:
                    shutil.copyfile(Path(root) / name, here / name, follow_symlinks=False)
        if not os.path.lexists(target):
            try:
                part.rename(target)
                return True
            except OSError as exc:  # a folder of the same name, just made by another
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        if part.is_dir():
            shutil.rmtree(part, ignore_errors=True)
        else:
            part.unlink(missing_ok=True)
        return False
    finally:
        os.umask(old)


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def prepare(value: str, mode: str) -> list[str]:
    """Every link's target ready on the volume; returns info lines. A path
    that is not a link: in production, an image built without the link
    (WritableError); in debug mode, the developer's mounted checkout, which
    is theirs to write (a warning if this uid cannot)."""
    notes = []
    for entry in entries(value):
        path = entry.path
        if not (path.is_symlink() and os.readlink(path) == str(entry.target)):
            if mode != "debug":
                raise WritableError(
                    f"WRITABLE_PATHS names {path}, which this image does not keep on the instance volume: "
                    "build it with `RUN python3 -m flaskbox writable` (as root, after "
                    "`ENV WRITABLE_PATHS=...`) in your Dockerfile (docs/your-app.md)")
            existing = _nearest_existing(path)
            if not os.access(existing, os.W_OK):
                notes.append(f"warning: {path} is in the folder mounted on /app and uid {os.getuid()} "
                             f"may not write {existing}: {_how_to_write(existing)}")
            continue
        try:
            if entry.target.exists() or entry.target.is_symlink():
                continue
            _make_folder(entry.target.parent)
            if entry.seed.exists():
                if _copy_seed(entry.seed, entry.target):
                    notes.append(f"{path}: first start on this volume, {entry.target} copied from the image")
            elif entry.folder:
                _make_folder(entry.target)
        except OSError as exc:
            fix = ("it is mounted read-only: mount it read-write (drop `:ro`)" if exc.errno == errno.EROFS
                   else "mount a volume there (-v myapp-data:/app/instance), or chown a bind-mounted folder "
                        "to 10001:0")
            raise WritableError(
                f"WRITABLE_PATHS: cannot prepare {entry.target} for {path} ({exc.strerror}): {INSTANCE} "
                f"must be writable by this uid: {fix}", code=FAILED) from exc
    return notes


def _how_to_write(folder: Path) -> str:
    """What to do about a folder of the developer's checkout that the server
    may not write. Owned by root, --user "$(id -u):$(id -g)" would say
    --user 0:0, which changes nothing: the servers never run as root, in
    debug mode neither (its debugger runs any code it is sent, as the
    server's user), so the group is the way (the server is in group 0)."""
    if folder.stat().st_uid == 0:
        return ("it belongs to root, and the server never runs as root (--user 0 changes nothing): make it "
                "writable for group 0, the server's group (chmod g+w on the folder you mount there), or own "
                "your checkout as a user other than root and run as that user (--user \"$(id -u):$(id -g)\")")
    return "run with --user \"$(id -u):$(id -g)\" so that the app writes your checkout as you would"


def _read_only(path: Path) -> bool:
    """Whether the file system at `path` is mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def instance_unwritable() -> str:
    """Why this uid may not write the instance folder, and what to do."""
    if _read_only(INSTANCE):
        return ("it is mounted read-only (`:ro`, or `read_only: true` in compose), so the app cannot keep "
                "data there: mount it read-write")
    info = INSTANCE.stat()
    if info.st_gid == 0 and info.st_mode & 0o020 and os.getgid() != 0:
        fix = f"run in group 0, which may write it (--user {os.getuid()}:0)"
    elif info.st_uid == 0:
        fix = ("chown a bind-mounted folder to 10001:0, or make it writable for group 0 (chmod g+w; "
               "the server never runs as root: --user 0 changes nothing)")
    else:
        fix = "chown a bind-mounted folder to 10001:0, or run with --user matching its owner"
    return (f"uid {os.getuid()} may not write it (owner {info.st_uid}:{info.st_gid}, mode "
            f"{info.st_mode & 0o7777:o}), so the app cannot keep data there: {fix}")


def instance_notes(host=None) -> list[str]:
    """What is mounted on the instance folder, said when it is a trap: a
    mount this uid may not write, and a volume inside a bind-mounted /app
    (Docker makes a missing mount point in the developer's checkout, owned
    by root)."""
    from ..host import Host

    host = host or Host()
    mount = host.mount_of(str(INSTANCE))
    if mount is None or mount.point != str(INSTANCE):
        return []
    notes = []
    if _read_only(INSTANCE):
        # Its owner and mode are beside the point: nobody may write it.
        notes.append(
            f"warning: {INSTANCE} is mounted read-only (`:ro`, or `read_only: true` in compose), so the app "
            "cannot keep data there: every write fails (SQLite: \"attempt to write a readonly database\"). "
            "Mount it read-write (drop `:ro`) unless it only holds files the app reads")
    elif not os.access(INSTANCE, os.W_OK | os.X_OK):
        notes.append(f"warning: {INSTANCE} is mounted, and {instance_unwritable()}")
    app = host.mount_of(str(APP_DIR))
    if app is not None and app.point == str(APP_DIR):
        notes.append(
            f"a volume is mounted on {INSTANCE} inside the folder mounted on {APP_DIR}: if your checkout "
            "had no instance/, Docker made one in it, owned by root. `mkdir instance` in the checkout "
            "before the first run, or drop that volume and let the checkout's own instance/ hold the data "
            "(with --user \"$(id -u):$(id -g)\")")
    return notes
