"""Debug mode writes nothing into the bind-mounted source: no __pycache__,
no marker files, whatever user the container was started as. The mount is
made world-writable here, so that any write would succeed and be seen."""

import uuid
from pathlib import Path

import pytest


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (uid, gid) of everything under root."""
    return {str(p.relative_to(root)): (p.stat().st_uid, p.stat().st_gid) for p in root.rglob("*")}


def open_to_all(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)


@pytest.mark.parametrize("user", [None, "0"], ids=["image-user", "started-as-root"])
def test_nothing_is_written_into_the_mount(containers, app_copy, user):
    open_to_all(app_copy)
    # A package and a module imported by app.py: what would get __pycache__.
    package = app_copy / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "words.py").write_text("GREETING = 'Hello'\n")
    source = app_copy / "app.py"
    source.write_text(source.read_text().replace('f"Hello, {name}!"', 'f"{GREETING}, {name}!"')
                      + "\nfrom pkg.words import GREETING  # noqa: E402\n")
    # INSTALL_ON_START=1 runs pip and checks the OS packages (tini is in the
    # image): their checksums must be kept elsewhere.
    (app_copy / "requirements.txt").write_text("# nothing to install\n")
    (app_copy / "requirements_os.txt").write_text("tini\n")
    open_to_all(app_copy)
    before = snapshot(app_copy)

    docker_args = ("-v", f"{app_copy}:/app") + (("--user", user) if user else ())
    c = containers.run("-d", "debug", env={"INSTALL_ON_START": "1"}, docker_args=docker_args)
    c.wait_http("/api/hello")
    # Exercise what could write: requests, a reload, an error, a fix.
    assert c.request("/api/hello?name=Ann").json() == {"message": "Hello, Ann!"}
    token = f"Hi{uuid.uuid4().hex[:8]}"
    (package / "words.py").write_text(f"GREETING = {token!r}\n")
    c.wait_until(lambda: token in c.request("/api/hello").text, "the reload")
    source.write_text(source.read_text() + "\ndef broken(:\n")
    c.wait_until(lambda: c.request("/api/hello").status == 500, "the syntax error")
    source.write_text(source.read_text().replace("\ndef broken(:\n", ""))
    c.wait_http("/api/hello")
    assert c.request("/static/style.css").status == 200

    after = snapshot(app_copy)
    assert after == before, f"written into the mount: {set(after.items()) ^ set(before.items())}"
    assert not list(app_copy.rglob("__pycache__"))
    logs = c.logs()
    assert "INSTALL_ON_START: installing Python packages" in logs
    if user == "0":
        assert "started as root: continuing as" in logs
