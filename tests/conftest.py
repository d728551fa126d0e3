"""Session fixtures: the image is built once; every container is removed."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

import uwsgi_wheel
from containers import ContainerFactory
from helpers import REPO, build_image, docker, make_pair, pins, share_with_container
from tiers import mark_and_order

FIXTURE_APP = Path(__file__).resolve().parent / "fixture_app"
# Apps shaped like real ones, each built FROM the app-less image.
APPS = Path(__file__).resolve().parent / "apps"
# flaskbox's own Python (lib/flaskbox), for the tests that need no container.
sys.path.insert(0, str(REPO / "lib"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Before -m selects: the tiers' markers and the parallel phase's order (tiers.py)."""
    mark_and_order(items)


def require_engine() -> None:
    # No engine means no container test can prove anything: fail loudly,
    # never skip. Tests that need no container run without one.
    result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=60)
    if result.returncode != 0:
        pytest.fail("no Docker engine answers `docker info`; start one (tests/run.sh does)\n" + result.stderr,
                    pytrace=False)


def base_build_args() -> dict[str, str]:
    """BASE_IMAGE and mirror build args from the environment, if set; on an
    emulated base, uWSGI's wheel from an earlier build (tests/uwsgi_wheel.py)."""
    names = ("BASE_IMAGE", "APT_MIRROR", "PIP_INDEX_URL", "PIP_TRUSTED_HOST")
    args = {name: os.environ[name] for name in names if os.environ.get(name)}
    return {**args, **uwsgi_wheel.prebuilt(args.get("BASE_IMAGE"))}


@contextlib.contextmanager
def one_worker_at_a_time(tmp_path_factory, name: str):
    """Holds a lock that the other pytest-xdist workers of this run wait
    for, and yields a folder they share; without xdist, the session's own
    temporary folder. A build made under it lets the next worker's take the
    layers from the cache instead of building the same ones beside it."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # every worker's basetemp is a folder in it
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield shared


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> str:
    """The image under test: FLASKBOX_IMAGE if given, else built from the repo
    (tagged FLASKBOX_TEST_TAG, so that two checkouts can test side by side),
    once per pytest run: the first xdist worker builds, the others wait and
    take its tag."""
    require_engine()
    if os.environ.get("FLASKBOX_IMAGE"):
        return os.environ["FLASKBOX_IMAGE"]
    tag = os.environ.get("FLASKBOX_TEST_TAG", "flaskbox:test")
    with one_worker_at_a_time(tmp_path_factory, "image") as shared:
        built = shared / "image.json"
        if built.exists():
            return json.loads(built.read_text())["tag"]
        # Under arm64 emulation (tests/arch_arm64.py) a build takes several times longer.
        args = {**base_build_args(), **provenance_build_args()}
        build_image(REPO, tag, args, timeout=2400)
        uwsgi_wheel.keep(args)
        built.write_text(json.dumps({"tag": tag}))
    return tag


def git_revision() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()


def provenance_build_args() -> dict[str, str]:
    """The OCI labels' build arguments, as deploy/up.sh passes them."""
    args = {"REVISION": git_revision(),
            "CREATED": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=REPO, capture_output=True, text=True)
    if origin.returncode == 0:
        # Without any user or token the URL may carry.
        args["SOURCE"] = re.sub(r"://[^/@]*@", "://", origin.stdout.strip())
    return args


# Figures the tests measured, printed at the end of the run (RELIABILITY.md quotes them).
FIGURES: list[tuple[str, str, str]] = []


@pytest.fixture
def figure(request):
    """figure(label, value): records a measured number for the summary."""
    def record(label: str, value: str) -> None:
        FIGURES.append((request.node.nodeid, label, value))
    return record


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured figures (docs/RELIABILITY.md)")
        for nodeid, label, value in FIGURES:
            terminalreporter.write_line(f"{nodeid}: {label} = {value}")


@pytest.fixture
def containers(image):
    factory = ContainerFactory(image)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_containers(fixture_image):
    """Containers of the fixture image that live for a whole test module,
    for modules whose tests only send requests to a shared server."""
    factory = ContainerFactory(fixture_image["image"])
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def fixture_image(image, tmp_path_factory) -> dict[str, str]:
    """A child image built the way users build theirs (FROM image + COPY app
    /app) with the test app from tests/fixture_app. Its static file carries a
    token that exists only in this build."""
    context = tmp_path_factory.mktemp("fixture-image")
    shutil.copytree(FIXTURE_APP, context / "app", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    token = uuid.uuid4().hex
    static = context / "app" / "static"
    (static / "proof.txt").write_text(f"static {token}\n")
    # What a careless COPY puts in a static folder: secrets in dotfiles, a
    # repository, and a symlink out of the folder to the app's source.
    (static / ".env").write_text(f"SECRET_KEY=dotenv-{token}\n")
    (static / ".git").mkdir()
    (static / ".git" / "config").write_text(f"[core] # git-{token}\n")
    (static / "sub").mkdir()
    (static / "sub" / ".hidden").write_text(f"hidden-{token}\n")
    (static / "sub" / "visible.txt").write_text(f"visible {token}\n")
    (static / ".well-known").mkdir()
    (static / ".well-known" / "static.txt").write_text(f"well-known static {token}\n")
    (static / "source.py").symlink_to("../app.py")
    # A fingerprinted name, as asset pipelines produce (cached for good).
    (static / "app.0123abcd.css").write_text(f"/* {token} */\n" + "body { color: red; }\n" * 100)
    # A date, not a hash: must be revalidated like any other file.
    (static / "report.20240115.css").write_text(f"/* {token} */\n")
    # A second folder, for STATIC_URL / STATIC_PATH set elsewhere.
    (context / "app" / "public").mkdir()
    (context / "app" / "public" / "asset.txt").write_text(f"public {token}\n")
    (context / "Dockerfile").write_text(f"FROM {image}\nCOPY app /app\n")
    tag = f"flaskbox-fixture:{token[:12]}"
    with one_worker_at_a_time(tmp_path_factory, "fixture-image"):
        build_image(context, tag)
    yield {"image": tag, "static_token": token}
    docker("rmi", "-f", tag, check=False)


@pytest.fixture
def app_copy(tmp_path) -> Path:
    """A copy of the sample app/ that a container can read (mode 755/644)."""
    target = tmp_path / "app"
    shutil.copytree(REPO / "app", target, ignore=shutil.ignore_patterns("__pycache__"))
    tmp_path.chmod(0o755)
    share_with_container(target)
    return target


@pytest.fixture(scope="session")
def runtime_image(image, tmp_path_factory) -> str:
    """The image without the sample app: what users build FROM. (Built after
    `image`, so it comes from the same cache.) Each xdist worker tags and
    removes its own."""
    tag = f"flaskbox-runtime:{uuid.uuid4().hex[:12]}"
    with one_worker_at_a_time(tmp_path_factory, "runtime-image"):
        build_image(REPO, tag, base_build_args(), target="runtime")
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture(scope="session")
def app_images(runtime_image, tmp_path_factory):
    """name -> image tag, each tests/apps/<name> built FROM runtime_image
    (by each xdist worker, one at a time: the second comes from the cache)."""
    built: dict[str, str] = {}

    def build(name: str) -> str:
        if name not in built:
            tag = f"flaskbox-app-{name}:{uuid.uuid4().hex[:12]}"
            with one_worker_at_a_time(tmp_path_factory, f"app-{name}"):
                build_image(APPS / name, tag, {"FLASKBOX": runtime_image})
            built[name] = tag
        return built[name]

    yield build
    for tag in built.values():
        docker("rmi", "-f", tag, check=False)


# How the realtime app (tests/apps/realtime) is served: production with each
# worker class, and debug mode.
SERVED_AS = {
    "sync": ((), {}),
    "gevent": ((), {"WORKER_CLASS": "gevent"}),
    "debug": (("-d", "debug"), {}),
}


@pytest.fixture(scope="session")
def app_pins(image):
    """name -> version an app of tests/apps pins on the image's Python
    (helpers.pins: some pins differ where Python 3.14 needs newer ones)."""
    script = "import sys; print('%d.%d' % sys.version_info[:2])"
    python = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", image, "-c", script).stdout
    return lambda app: pins(APPS / app / "requirements.txt", python.strip())


@pytest.fixture(scope="module")
def realtime(app_images, request):
    """served_as(name) -> a running container of the realtime app, one per
    name for the whole module (tests there only send it requests)."""
    factory = ContainerFactory(app_images("realtime"))
    running = {}

    def served_as(name: str, **env: str):
        key = (name, tuple(sorted(env.items())))
        if key not in running:
            args, mode_env = SERVED_AS[name]
            container = factory.run(*args, env={**mode_env, **env})
            container.wait_http("/page")
            running[key] = container
        return running[key]

    yield served_as
    factory.cleanup()


@pytest.fixture
def volume():
    """A named volume, removed afterwards with whatever container still uses
    it (the containers fixture may not have removed it yet: fixtures end in
    the reverse order they began), so that no run leaves one behind."""
    name = f"flaskbox-test-{uuid.uuid4().hex[:10]}"
    docker("volume", "create", name)
    yield name
    users = docker("ps", "-aq", "--filter", f"volume={name}").stdout.split()
    if users:
        docker("rm", "-f", *users, check=False)
    docker("volume", "rm", name)


@pytest.fixture
def certs(tmp_path):
    """A folder with a self-signed tls.crt and tls.key, for -v ...:/etc/tls:ro."""
    directory = tmp_path / "tls"
    directory.mkdir()
    make_pair(directory)
    share_with_container(tmp_path, directory)
    return directory
