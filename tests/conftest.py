"""Session fixtures: the image is built once; every container is removed."""

from __future__ import annotations

import collections
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

FIXTURE_APP = Path(__file__).resolve().parent / "fixture_app"
# Apps shaped like real ones, each built FROM the app-less image.
APPS = Path(__file__).resolve().parent / "apps"
# flaskbox's own Python (lib/flaskbox), for the tests that need no container.
sys.path.insert(0, str(REPO / "lib"))


# The suite's tiers (docs/testing.md), marked at collection:
# - `container`: the test needs the engine: it uses the image (every image
#   and container fixture starts from `image`) or a volume, directly or
#   through other fixtures, or its module drives docker itself. `-m "not
#   container"` is the in-process tier, under a minute.
# - `timed`: the test measures time or load, which other tests running
#   beside it would distort: tests/run.sh runs these alone, after the rest
#   ran on parallel workers. The `slow` ones, every user of `figure`, and
#   those below, whose bounds are a few seconds or less. In process too:
#   the in-process tier holds no test that measures time (a busy machine
#   would make it red, and end the run); its timed ones run once, alone,
#   before the serial phases.
# - `interpreter`: the test proves what differs between Pythons (uWSGI's
#   forks and threads, reloads, the hop from nginx, the dev server's
#   reloader, packages pinned by apps): the default base's timed tests in
#   CI, and on Debian 13 three of these modules (docs/testing.md).
# - `nginx`: the test proves what differs between nginx versions (HTTP/2's
#   and TLS's directives, header limits, the request parser, the proxy's
#   framing, caching and logs): with `interpreter`, what CI runs of the
#   untimed tests on the default base, whose nginx is the oldest.
CONTAINER_FIXTURES = {"image", "volume"}
INTERPRETER_MODULES = {"test_uwsgi_reports.py", "test_upstream_hop.py", "test_worker_pool.py",
                       "test_reload.py", "test_gevent_pins.py", "test_your_app.py", "test_debugger.py"}
NGINX_MODULES = {
    "test_tls.py", "test_tls_files.py", "test_proxy.py", "test_host.py", "test_host_header.py",
    "test_allowed_hosts.py", "test_forwarded_lines.py", "test_long_links.py", "test_header_limits.py",
    "test_client_limits.py", "test_limits.py", "test_request_framing.py", "test_request_bodies.py",
    "test_cut_responses.py", "test_compression.py", "test_ranges.py", "test_traversal.py", "test_static.py",
    "test_static_caching.py", "test_vary.py", "test_security_headers.py", "test_websockets.py",
    "test_request_id.py", "test_trace_context.py", "test_logs.py", "test_json_logs.py",
}
DOCKER_MODULES = {"test_bench.py", "test_bench_modes.py", "test_build.py"}
# Every container test there waits for a save to be served within a 2 s
# budget (the debug modules), or times when streams end at a stop or a
# reload (test_stream_finish.py), or judges what a load made of the pool
# (test_adaptive_threads.py, test_overload_goodput.py, which runs busy
# loops of its own beside it).
TIMED_MODULES = {"test_debug.py", "test_debug_errors.py", "test_stream_finish.py", "test_adaptive_threads.py",
                 "test_overload_goodput.py"}
# Slow, but measuring nothing it asserts on: the benchmark's smoke runs
# prove the harness runs and writes every figure (bounds of 10 s and up),
# so they run beside the other untimed tests (3 minutes off the serial
# phase, where they were the three slowest tests); and a build with a
# compiled wheel added (a new lock: the whole venv and uWSGI again).
UNTIMED_SLOW_MODULES = {"test_bench.py", "test_bench_modes.py", "test_build.py"}
# Slow tests that only wait, asserting no bound a busy machine could break:
# an export that takes its own 45 s, a disk that fills under a slow download
# (a minute off the serial phase: docs/testing.md).
UNTIMED_SLOW_TESTS = {
    "test_request_timeout.py": {"test_a_45_second_export_arrives_whole_with_the_defaults"},
    "test_cut_responses.py": {"test_a_download_whose_spool_disk_fills_up_is_cut_visibly"},
}
# The parallel phase's longest modules, longest first (by a full run's JUnit
# times; docs/testing.md, what it saved): tests/run.sh hands xdist's workers whole modules in
# collection order (--no-loadscope-reorder), so these start first and the
# rest fill in behind them. xdist's own order (most tests first) left the
# one-test bench smoke runs to the end, on one worker, the others idle.
LONGEST_FIRST = ("test_your_app.py", "test_bench_modes.py", "test_wsgi_bodies.py", "test_bench.py",
                 "test_pyproject_uv.py", "test_metrics.py", "test_install_on_start.py", "test_first_hour.py",
                 "test_gevent_pins.py", "test_reload.py", "test_resource_limits.py", "test_writable_paths.py",
                 "test_request_timeout.py")  # (its 45 s export: UNTIMED_SLOW_TESTS)
TIMED_TESTS = {
    "test_gevent.py": {"test_request_timeout_bounds_the_handler_not_the_stream",  # 504 within 3.5 s
                       "test_idle_and_overlong_streams_end_cleanly",  # ends 1.8 to 3.5 s in
                       "test_a_websocket_is_closed_at_stream_max_duration",  # 1.8 to 4 s
                       "test_streams_leave_a_tenth_of_the_slots_to_ordinary_requests"},  # under 2 s
    "test_streams.py": {"test_a_text_generator_flows_to_requests_with_gzip"},  # each chunk within 100 ms
    "test_supervision.py": {"test_helpers_dying_while_a_reload_waits_for_new_code_come_back_at_once",  # 5 s
                            "test_a_relay_killed_while_the_app_floods_stderr_comes_back_and_nothing_hangs"},
    "test_kubernetes_consistency.py": {"test_readiness_fails_as_soon_as_the_stop_starts",  # under 1 s
                                       "test_stop_with_a_stuck_request_ends_within_the_grace_period"},
    "test_request_timeout.py": {"test_a_stream_gone_silent_is_cut_visibly"},  # within 3 s of the timeout
    "test_shutdown.py": {"test_stop_while_the_app_is_still_importing"},  # under 5 s
    "test_reload.py": {"test_a_stop_after_reloads_still_loses_nothing"},  # under load
    "test_queue_depth.py": {"test_the_metric_counts_requests_queued_behind_a_busy_worker"},  # within 4 s
    # In process: a real watchdog thread, real child processes, a real
    # client, each against its budget of a second or less.
    "test_request_path.py": {"test_a_stuck_request_is_answered_504_on_its_connection_and_its_worker_retires",
                             "test_a_request_beside_a_stuck_one_keeps_its_worker_until_it_ends",
                             "test_time_writing_to_a_slow_client_does_not_count",  # under 0.1 s
                             "test_a_body_that_keeps_sending_is_never_cut_however_long",  # parts 0.04 s apart
                             "test_until_the_first_part_the_queue_and_the_handler_count_together",
                             "test_a_body_past_the_timeout_stops_and_is_not_sent",
                             "test_time_in_the_queue_counts"},
    # Under 3 s; 2 to 3 s.
    "test_spawn_guard.py": {"test_the_workers_still_up_end_as_at_a_stop_before_the_master_gives_up",
                            "test_a_worker_past_the_budget_is_killed_and_the_log_names_it"},
    "test_worker_exit.py": {"test_the_watchdog_exit_runs_the_handlers_to_their_end",  # 0.8 s of a 5 s budget
                            "test_handlers_past_the_budget_are_ended_and_named",
                            "test_uwsgis_exit_first_runs_them_once_and_the_watchdog_waits",
                            "test_the_watchdog_first_keeps_the_process_exit_from_running_them_again"},
    "test_gate_path.py": {"test_one_that_could_no_longer_be_answered_in_time_is_refused_with_503"},  # < 1 s
    # A p50 under 50 ms; 20 ms services; none over 150 ms.
    "test_bench_openloop.py": {"test_a_stall_is_charged_to_every_request_that_arrived_during_it",
                               "test_a_closed_loop_keeps_each_client_waiting_on_its_answer",
                               "test_a_closed_loop_counts_nothing_of_its_warm_up"},
}


def shared_module_fixtures(item) -> set[str]:
    """The fixtures of a module or class scope the test uses: a server that
    its module's tests share, and whose state may carry from one to the next."""
    definitions = item._fixtureinfo.name2fixturedefs  # pytest keeps no public view of these
    return {name for name in item.fixturenames
            if definitions.get(name) and definitions[name][-1].scope in ("module", "class")}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Before -m selects: the `container` and `timed` markers. A test that
    shares a module's server with a timed one is timed too, so that the
    module's tests on that server still run in their order, in one phase."""
    timed_servers: dict[str, set[str]] = {}
    for item in items:
        module = item.path.name
        if CONTAINER_FIXTURES & set(item.fixturenames) or module in DOCKER_MODULES:
            item.add_marker(pytest.mark.container)
        if module in INTERPRETER_MODULES:
            item.add_marker(pytest.mark.interpreter)
        if module in NGINX_MODULES:
            item.add_marker(pytest.mark.nginx)
        slow = (item.get_closest_marker("slow") and module not in UNTIMED_SLOW_MODULES
                and item.originalname not in UNTIMED_SLOW_TESTS.get(module, ()))
        timed_module = module in TIMED_MODULES and item.get_closest_marker("container")
        if (slow or "figure" in item.fixturenames or timed_module
                or item.originalname in TIMED_TESTS.get(module, ())):
            item.add_marker(pytest.mark.timed)
            timed_servers.setdefault(module, set()).update(shared_module_fixtures(item))
    for item in items:
        if shared_module_fixtures(item) & timed_servers.get(item.path.name, set()):
            item.add_marker(pytest.mark.timed)
    # Stable, and one key a module: each module's tests stay together, in order.
    counts = collections.Counter(item.path.name for item in items)
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -counts[item.path.name]))


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
