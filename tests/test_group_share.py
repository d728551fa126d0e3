"""Group-writable by default: the servers, the hooks and one-off commands run
in group 0 with umask 002, as OpenShift runs an arbitrary uid in group 0, so
a file one such uid makes on the instance volume another may write, in both
directions, the image's own user (10001:0) included. SQLite, which makes
its database files 0644 whatever the umask, follows the umask too
(flaskbox/userapp/sqlite_files.py). The app, tests/apps/guestbook, makes its
database and uploads folder on the first request that needs them."""

import pytest

from helpers import docker

# Each process's pid, umask, real gid and command line, read from /proc.
STATUS = ('for p in /proc/[0-9]*; do c="$(tr "\\0" " " < "$p/cmdline" 2>/dev/null)" || continue; '
          '[ -n "$c" ] || continue; '
          'printf "%s\\t%s\\t%s\\t%s\\n" "${p#/proc/}" "$(awk \'/^Umask:/ {print $2}\' "$p/status")" '
          '"$(awk \'/^Gid:/ {print $2}\' "$p/status")" "$c"; done; true')


def process_table(container) -> list[tuple[str, ...]]:
    """(pid, umask, gid, command line) of every process but the probe's own."""
    out = container.exec("bash", "-c", STATUS).stdout
    rows = [tuple(line.split("\t", 3)) for line in out.splitlines() if line.count("\t") >= 3]
    # Not the probe, nor tini (PID 1 in debug mode), which docker starts with its umask.
    return [row for row in rows if "/proc/[0-9]*" not in row[3] and not row[3].startswith("/usr/bin/tini")]


@pytest.mark.parametrize("mode_args, servers", [
    # PID 1 in production: the arbiter the entry-point execs (issue 47).
    ((), ("nginx: master", "nginx: worker", "uWSGI master", "uWSGI worker", "flaskbox.arbiter")),
    (("-d", "debug"), ("flaskbox.debug.server",)),
], ids=["production", "debug"])
def test_the_servers_run_in_group_0_with_umask_002(containers, mode_args, servers):
    c = containers.run(*mode_args)
    c.wait_http("/")
    table = process_table(c)
    for server in servers:
        found = [row for row in table if server in row[3]]
        assert found, table
        assert {(umask, gid) for _, umask, gid, _ in found} == {("0002", "0")}, found


def test_one_off_commands_and_docker_exec_flask_too(containers, image):
    once = containers.run_once("sh", "-c", "echo $(umask) $(id -g)")
    assert once.stdout.split() == ["0002", "0"], once.stdout + once.stderr
    c = containers.serving()
    printed = docker("exec", "-i", c.name, "flask", "shell", check=False,
                     input="import os; print('UMASK', oct(os.umask(0o002)), os.getgid())\n")
    assert "UMASK 0o2 0" in printed.stdout, printed.stdout + printed.stderr


def sign(container, name: str) -> None:
    resp = container.request("/sign", method="POST", body=f"name={name}".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 201, f"{resp.status} {resp.text}\n--- docker logs ---\n{container.logs()}"


def modes(container, *paths: str) -> dict[str, str]:
    """path -> 'mode uid gid', as the container sees them."""
    out = container.exec("stat", "-c", "%n %a %u %g", *paths)
    assert out.returncode == 0, out.stderr
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.stdout.splitlines()}


DATABASE = "/app/instance/guestbook.sqlite"
UPLOADS = "/app/instance/uploads"
# What a `flask init-db` of this app would do, as a one-off command of its own uid.
INIT_DB = ("import sqlite3; db = sqlite3.connect('/app/instance/guestbook.sqlite'); "
           "db.execute('CREATE TABLE signature (name TEXT NOT NULL, uid INTEGER NOT NULL)'); db.commit()")


def test_what_one_uid_makes_another_may_write(containers, app_images, volume):
    image = app_images("guestbook")
    data = ("-v", f"{volume}:/app/instance")
    # A one-off command as one uid of group 0 makes the database ...
    init = containers.run_once("python3", "-c", INIT_DB, image=image,
                               docker_args=(*data, "--user", "23456:0"))
    assert init.returncode == 0, init.stderr

    def serve(*user: str):
        c = containers.run(image=image, docker_args=(*data, *user))
        c.wait_http("/signatures")
        return c

    # ... the image's user writes it, and makes the uploads folder and files;
    first = serve()
    sign(first, "ann")
    assert modes(first, DATABASE, UPLOADS, f"{UPLOADS}/signatures.txt", f"{UPLOADS}/ann.txt") == {
        DATABASE: "664 23456 0",
        UPLOADS: "2775 10001 0",  # setgid, as /app/instance: what is made in it stays group 0's
        f"{UPLOADS}/signatures.txt": "664 10001 0",
        f"{UPLOADS}/ann.txt": "664 10001 0",
    }
    first.remove()
    # ... another uid of group 0 writes all of that, and makes a file of its own;
    second = serve("--user", "12345:0")
    sign(second, "bob")
    sign(second, "ann")  # rewrites the file the image's user made
    assert modes(second, f"{UPLOADS}/bob.txt")[f"{UPLOADS}/bob.txt"] == "664 12345 0"
    second.remove()
    # ... and the image's user writes what that one made.
    third = serve()
    sign(third, "bob")
    assert third.request("/signatures").json() == [["ann", 10001], ["bob", 12345], ["ann", 12345],
                                                   ["bob", 10001]]
    cards = third.exec("cat", f"{UPLOADS}/ann.txt", f"{UPLOADS}/bob.txt").stdout
    assert cards == "signed by uid 12345\nsigned by uid 10001\n", cards


def test_a_new_sqlite_database_follows_the_umask(containers, app_images, volume):
    """The server makes the database on its first request: 0664, where
    SQLite alone makes 0644."""
    c = containers.run(image=app_images("guestbook"), docker_args=("-v", f"{volume}:/app/instance"))
    c.wait_http("/signatures")
    assert modes(c, DATABASE)[DATABASE] == "664 10001 0"
    # In-memory databases and URIs are SQLite's own business, untouched.
    probe = c.exec("sh", "-c", "umask 002; python3 -c \"import os, sqlite3; "
                   "sqlite3.connect(':memory:').execute('select 1'); "
                   "sqlite3.connect('file:/tmp/uri.db', uri=True).execute('create table t (x)'); "
                   "print(oct(os.stat('/tmp/uri.db').st_mode & 0o777))\"")
    assert probe.returncode == 0 and probe.stdout.strip() == "0o644", probe.stdout + probe.stderr
    # Through a link whose target is not there yet, as WRITABLE_PATHS links /app/app.db into the
    # volume: the target follows the umask (O_EXCL alone refused the link, and SQLite made it 0644).
    linked = c.exec("sh", "-c", "umask 002; ln -s /app/instance/linked.sqlite /tmp/app.db && python3 -c "
                    "\"import sqlite3; sqlite3.connect('/tmp/app.db').execute('create table t (x)')\" && "
                    "stat -c %a /app/instance/linked.sqlite")
    assert linked.returncode == 0 and linked.stdout.strip() == "664", linked.stdout + linked.stderr


def test_group_0_gains_nothing_in_the_image(image):
    """The image's user is in group 0, like any uid OpenShift picks: group 0
    may write nothing in the image that everyone may not, but the instance
    folder, and reads nothing the world may not (but dpkg's empty lock
    files)."""
    search = "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -group 0 ! -type l {} -print"

    def found(test: str) -> set[str]:
        return set(docker("run", "--rm", "--network", "host", "--user", "0", "--entrypoint", "bash", image,
                          "-c", search.format(test)).stdout.split())

    assert found("-perm -g+w ! -perm -o+w") == {"/app/instance"}
    assert found("-perm -g+r ! -perm -o+r") <= {"/var/lib/dpkg/lock", "/var/lib/dpkg/lock-frontend"}
