"""INSTALL_ON_START=1 (debug mode only): packages listed in the mounted
/app/requirements.txt and /app/requirements_os.txt are installed before the
server starts, and only when a file changed since the last install in this
container. Python packages come from wheels the test builds (pip needs no
network); the OS package tests use the Debian archive, as the build does."""

import base64
import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest

from helpers import docker, share_with_container


def build_wheel(folder: Path, name: str, token: str, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel: module `name` with TOKEN = token."""
    files = {
        f"{name}/__init__.py": f"TOKEN = {token!r}\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL":
            "Wheel-Version: 1.0\nGenerator: flaskbox-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    wheel.write_bytes(buffer.getvalue())
    return wheel


def requirements(*lines: str) -> str:
    # Offline: only the wheels in /app/wheels.
    return "--no-index\n--find-links /app/wheels\n" + "".join(f"{line}\n" for line in lines)


def add_token_route(app_dir: Path, module: str, route: str) -> None:
    """app.py imports `module` at import time and serves its TOKEN at route."""
    with (app_dir / "app.py").open("a") as source:
        source.write(f"\n\nimport {module}  # noqa: E402\n\n\n"
                     f"@app.get('{route}')\ndef token_{module}():\n    return {module}.TOKEN\n")


@pytest.fixture
def package(app_copy):
    """A wheel with a random name and token in app/wheels, imported by app.py."""
    name = f"fbt_{uuid.uuid4().hex[:10]}"
    token = uuid.uuid4().hex
    build_wheel(app_copy / "wheels", name, token)
    add_token_route(app_copy, name, "/pkg")
    # Flask too: offline, pip accepts it only as the image's own copy.
    (app_copy / "requirements.txt").write_text(requirements(f"{name}==1.0", "Flask"))
    share_with_container(app_copy)
    return {"name": name, "token": token}


def start(containers, app_dir: Path, *, user: str | None = None, docker_args: tuple[str, ...] = ()):
    docker_args = ("-v", f"{app_dir}:/app", *docker_args) + (("--user", user) if user else ())
    return containers.run("-d", "debug", env={"INSTALL_ON_START": "1"}, docker_args=docker_args)


def test_packages_are_installed_before_the_server_starts(containers, app_copy, package):
    c = start(containers, app_copy)
    # The app imports the package at start: a 200 at once, with no reload,
    # means it was installed before the server loaded the app.
    resp = c.wait_http("/pkg")
    assert resp.text == package["token"]
    logs = c.timeline()
    installing = logs.index("installing Python packages from /app/requirements.txt")
    assert installing < logs.index("Serving Flask app")
    assert "Detected change" not in logs
    assert "Requirement already satisfied: Flask" in logs
    # `docker exec ... flask` sees what the server sees, the installed package included.
    shell = docker("exec", "-i", c.name, "flask", "shell", check=False,
                   input=f"import {package['name']}; print('TOKEN', {package['name']}.TOKEN)\n")
    assert f"TOKEN {package['token']}" in shell.stdout, shell.stdout + shell.stderr


def test_a_restart_skips_an_unchanged_install_and_redoes_a_changed_one(containers, app_copy, package):
    c = start(containers, app_copy)
    assert c.wait_http("/pkg").text == package["token"]

    # With the wheel gone, only a skipped install lets the container start.
    for wheel in (app_copy / "wheels").iterdir():
        wheel.unlink()
    docker("restart", c.name, timeout=60)
    assert c.wait_http("/pkg").text == package["token"]
    assert c.logs().count("installing Python packages") == 1
    assert "/app/requirements.txt unchanged since its last install: no pip" in c.logs()

    # A changed file is installed again, on the next start.
    second, token = f"fbt_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    build_wheel(app_copy / "wheels", second, token)
    add_token_route(app_copy, second, "/second")
    (app_copy / "requirements.txt").write_text(requirements(f"{package['name']}==1.0", f"{second}==1.0"))
    share_with_container(app_copy)
    docker("restart", c.name, timeout=60)
    assert c.wait_http("/second").text == token
    assert c.logs().count("installing Python packages") == 2


def test_a_failed_install_stops_the_container_before_the_server(containers, app_copy):
    missing = f"fbt_missing_{uuid.uuid4().hex[:8]}"
    (app_copy / "wheels").mkdir()
    (app_copy / "requirements.txt").write_text(requirements(f"{missing}==1.0"))
    share_with_container(app_copy)
    c = start(containers, app_copy)
    code = c.wait_exit(timeout=120)
    logs = c.logs()
    assert code != 0, logs
    # pip's own error, then ours; the server never started.
    assert f"No matching distribution found for {missing}" in logs
    assert "pip could not install /app/requirements.txt" in logs and "not starting" in logs
    assert "Serving Flask app" not in logs and "Running on" not in logs


def test_a_package_of_the_image_can_be_shadowed_by_another_version(containers, app_copy):
    """A different version of a package the image has goes into the layered
    virtualenv, instead of failing to replace the root-owned original."""
    token = uuid.uuid4().hex
    # uWSGI serves production only, so a stand-in breaks nothing here.
    build_wheel(app_copy / "wheels", "uwsgi", token, version="0.0.1")
    add_token_route(app_copy, "uwsgi", "/uwsgi")
    (app_copy / "requirements.txt").write_text(requirements("uWSGI==0.0.1"))
    share_with_container(app_copy)
    c = start(containers, app_copy)
    assert c.wait_http("/uwsgi").text == token
    image_version = c.exec("/opt/venv/bin/python", "-c",
                           "import importlib.metadata as m; print(m.version('uWSGI'))").stdout.strip()
    assert image_version and image_version != "0.0.1", "the image's own virtualenv was changed"


@pytest.mark.parametrize("tmpfs, warned", [("/tmp", True), ("/tmp:exec", False)], ids=["noexec", "exec"])
def test_a_read_only_root_installs_into_the_tmpfs(containers, app_copy, package, tmpfs, warned):
    """The layered virtualenv lives in RUNTIME_DIR. Docker's --tmpfs is
    noexec by default, which compiled packages cannot load from: a warning
    says so (the pure-Python test package loads either way)."""
    c = start(containers, app_copy, docker_args=("--read-only", "--tmpfs", tmpfs))
    assert c.wait_http("/pkg").text == package["token"]
    assert ("is on a noexec mount" in c.logs()) is warned, c.logs()


def test_os_packages_without_root_stop_with_how_to_fix_it(containers, app_copy):
    # "hello" (GNU hello) is in every Debian and Ubuntu release, and not in the image.
    (app_copy / "requirements_os.txt").write_text("# for the test\nhello\n")
    share_with_container(app_copy)
    c = start(containers, app_copy)
    assert c.wait_exit(timeout=60) == 2
    logs = c.logs()
    assert "/app/requirements_os.txt lists OS packages that are not installed (hello)" in logs
    assert "rebuild the image" in logs and "--user root" in logs
    assert "Serving Flask app" not in logs


def test_os_packages_already_in_the_image_need_no_root(containers, app_copy):
    (app_copy / "requirements_os.txt").write_text("tini nginx  # both in the image\n")
    share_with_container(app_copy)
    c = start(containers, app_copy)
    c.wait_http("/")


def test_os_packages_are_installed_as_root_then_served_as_the_image_user(containers, app_copy, image):
    (app_copy / "requirements_os.txt").write_text("hello\n")
    share_with_container(app_copy)
    c = start(containers, app_copy, user="0")
    c.wait_http("/", timeout=300)
    assert "Hello, world!" in c.exec("hello").stdout
    logs = c.timeline()
    assert logs.index("installing OS packages from /app/requirements_os.txt: hello") \
        < logs.index("started as root: continuing as") < logs.index("Serving Flask app")
    image_user = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["User"]
    uids = {uid for _, uid, _ in c.app_processes(user=image_user)}
    assert uids == {image_user.split(":")[0]}, c.processes(user=image_user)

    docker("restart", c.name, timeout=60)
    c.wait_http("/")
    assert "/app/requirements_os.txt unchanged since its last install: no apt" in c.logs()
    assert c.logs().count("installing OS packages") == 1


def test_a_failed_os_install_stops_the_container_with_apts_error(containers, app_copy):
    missing = f"flaskbox-no-such-package-{uuid.uuid4().hex[:8]}"
    (app_copy / "requirements_os.txt").write_text(f"{missing}\n")
    share_with_container(app_copy)
    c = start(containers, app_copy, user="0")
    code = c.wait_exit(timeout=300)
    logs = c.logs()
    assert code != 0, logs
    assert f"Unable to locate package {missing}" in logs
    assert "apt could not install the packages in /app/requirements_os.txt" in logs
    assert "Serving Flask app" not in logs


@pytest.mark.parametrize("mode_args, value, message", [
    ((), "1", "INSTALL_ON_START=1 works in debug mode only"),
    (("-d", "debug"), "yes", "INSTALL_ON_START='yes' is not valid"),
], ids=["production", "not-0-or-1"])
def test_bad_install_on_start_exits_2(containers, mode_args, value, message):
    result = containers.run_once(*mode_args, env={"INSTALL_ON_START": value})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
