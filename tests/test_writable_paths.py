"""WRITABLE_PATHS: an app that writes next to its own code (tests/apps/board:
a `.data/` folder beside its package at import, a secret-key file it falls
back from silently, an uploads folder) runs with /app read-only and root's,
and what it writes outlives the container on the instance volume, under
another uid and on a read-only root. Without the setting, the start names
it, once."""

import shutil
import uuid

import pytest

from helpers import REPO, build_image, docker

FORM = {"Content-Type": "application/x-www-form-urlencoded"}



def test_writes_next_to_the_code_outlive_the_container(containers, app_images, volume):
    image = app_images("board")
    data = ("-v", f"{volume}:/app/instance")
    # A one-off command on the new volume, before any server: the paths are
    # ready for it too, and the uploads folder the image shipped
    # (welcome.txt) seeds the volume, once.
    once = containers.run_once("alembic", "-c", "/app/migrations/alembic.ini", "upgrade", "head",
                               image=image, docker_args=data)
    assert once.returncode == 0, once.stderr
    assert "/app/board/uploads: first start on this volume" in once.stderr
    c = containers.run(image=image, docker_args=data)
    key = c.wait_http("/whoami").json()["key"]
    assert c.request("/uploads/welcome.txt").text == "welcome to the board\n"
    assert c.request("/uploads/welcome.txt", method="POST", body=b"changed").status == 201
    token = uuid.uuid4().hex
    # The migration hook created the table in /app/.data, next to the code.
    assert c.request("/entries", method="POST", body=f"body={token}".encode(), headers=FORM).status == 302
    assert c.request(f"/uploads/{token}.txt", method="POST", body=token.encode()).status == 201
    docker("restart", c.name)
    c.wait_until(lambda: c.logs().count("running /docker-entrypoint.d/10-migrate.sh") == 2, "the restart")
    # The same secret key: nobody is logged out by a restart.
    assert c.wait_http("/whoami").json()["key"] == key
    assert token in c.request("/").text
    # A restart is not a first start: the seed is not copied over the change.
    assert c.request("/uploads/welcome.txt").text == "changed"
    assert "first start on this volume" not in c.logs()
    c.remove()
    # A new container, another uid of group 0, a read-only root: the same data.
    d = containers.run(image=image,
                       docker_args=(*data, "--user", "12345:0", "--read-only", "--tmpfs", "/tmp"))
    assert d.wait_http("/whoami").json()["key"] == key
    assert token in d.request("/").text
    assert d.request(f"/uploads/{token}.txt").text == token
    assert d.request("/uploads/second.txt", method="POST", body=b"x").status == 201
    assert d.request("/uploads/welcome.txt", method="POST", body=b"by 12345").status == 201
    # Written on the volume, through the links; /app itself was never written.
    listing = d.exec("find", "/app/instance/writable", "-maxdepth", "2").stdout.split()
    assert {"/app/instance/writable/.data/board.db", "/app/instance/writable/.secret_key",
            "/app/instance/writable/board/uploads"} <= set(listing), listing
    assert "warning" not in d.logs()


def test_debug_mode_writes_through_the_same_links(containers, app_images, volume):
    c = containers.run("-d", "debug", image=app_images("board"),
                       docker_args=("-v", f"{volume}:/app/instance"))
    assert c.wait_http("/whoami").json()["app"] == "board"
    assert c.request("/entries", method="POST", body=b"body=debug", headers=FORM).status == 302
    assert "debug" in c.request("/").text


def test_a_path_the_image_did_not_link_is_refused(containers, app_images):
    result = containers.run_once(image=app_images("board"), env={"WRITABLE_PATHS": "/app/board/cache/"})
    assert result.returncode == 2, result.stderr
    assert "WRITABLE_PATHS names /app/board/cache, which this image does not keep" in result.stderr
    assert "RUN python3 -m flaskbox writable" in result.stderr


@pytest.fixture(scope="module")
def unlinked_image(runtime_image, tmp_path_factory):
    """The board app built without WRITABLE_PATHS (and without its
    migration hook, so that the server imports it first)."""
    context = tmp_path_factory.mktemp("unlinked")
    shutil.copytree(REPO / "tests/apps/board/board", context / "board")
    shutil.copytree(REPO / "tests/apps/board/migrations", context / "migrations")
    shutil.copy(REPO / "tests/apps/board/requirements.txt", context)
    (context / "Dockerfile").write_text(
        f"FROM {runtime_image}\nUSER 0\nCOPY requirements.txt /tmp/requirements.txt\n"
        "RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt\n"
        "USER 10001:0\nCOPY board/ /app/board/\nCOPY migrations/ /app/migrations/\n"
        "ENV APP_MODULE=board\n")
    tag = f"flaskbox-unlinked:{uuid.uuid4().hex[:12]}"
    build_image(context, tag)
    yield tag
    docker("rmi", "-f", tag, check=False)


WARNING = 'set WRITABLE_PATHS="/app/.data/"'


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_without_the_setting_the_start_names_it_once(containers, unlinked_image, mode_args):
    c = containers.run(*mode_args, image=unlinked_image)
    if mode_args:
        # Debug mode serves the error and names the fix in the log.
        c.wait_http("/", status=500)
    else:
        assert c.wait_exit(timeout=60) != 0
    logs = c.logs()
    assert "PermissionError" in logs and "/app/board/../.data" in logs
    assert logs.count("your app writes next to its code") == 1, logs
    assert WARNING in logs and "RUN python3 -m flaskbox writable" in logs


def test_a_migration_hook_refused_names_the_setting_once(containers, unlinked_image):
    # The real app's migration hook imported it first, and failed there.
    hook = REPO / "tests/apps/board/hooks/10-migrate.sh"
    c = containers.run(image=unlinked_image,
                       docker_args=("-v", f"{hook}:/docker-entrypoint.d/10-migrate.sh:ro"))
    assert c.wait_exit(timeout=60) != 0
    logs = c.logs()
    assert "hook /docker-entrypoint.d/10-migrate.sh failed" in logs
    assert logs.count("your app writes next to its code") == 1, logs
    assert logs.index("PermissionError") < logs.index(WARNING) < logs.index("failed with exit code")


def test_a_one_off_command_refused_names_the_setting_once(containers, unlinked_image):
    # `docker run IMAGE flask db upgrade`, as the README shows, without the setting: the
    # traceback, then the fix (before: only the traceback).
    once = containers.run_once("python3", "-c", "import board", image=unlinked_image)
    assert once.returncode != 0
    assert "PermissionError" in once.stderr, once.stderr
    assert once.stderr.count("your app writes next to its code") == 1, once.stderr
    assert once.stderr.index("PermissionError") < once.stderr.index(WARNING), once.stderr
