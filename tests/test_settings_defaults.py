"""The defaults the settings compute from the container they start in
(lib/flaskbox/settings/), without a container: workers from the CPUs,
queues and per-client limits from the workers, upload space from the file
system, the pool fitted to the pids limit (or refused), gevent's from its
connections; and the one record they are resolved into, once per start."""

import os

import pytest

from fake_host import FakeHost, GiB, resolve
from flaskbox import layout, record, settings
from flaskbox.host import Mount
from flaskbox.start import body

# --- computed defaults -----------------------------------------------------

@pytest.mark.parametrize("cpus, processes, nginx", [(1, 2, 1), (2, 2, 2), (4, 4, 4), (64, 32, 64)])
def test_worker_counts_follow_the_cpus(cpus, processes, nginx):
    values = resolve(host=FakeHost(cpus=cpus)).values
    assert (values["UWSGI_PROCESSES"], values["UWSGI_THREADS"], values["NGINX_WORKER_PROCESSES"]) == \
        (str(processes), "32", str(nginx))


@pytest.mark.parametrize("env, queue, per_client, upstream", [
    ({}, 256, 320, 320),  # 2 CPUs: 2 processes x 32 threads; 4 waiting per thread
    ({"UWSGI_PROCESSES": "8"}, 1024, 1280, 1280),
    ({"UWSGI_PROCESSES": "2", "UWSGI_THREADS": "4"}, 64, 72, 72),  # the floor of 64 waiting
    ({"UWSGI_PROCESSES": "1024", "UWSGI_THREADS": "1024"}, 100000, 1000000, 1148576),  # the caps
    ({"QUEUE_SIZE": "10"}, 10, 74, 74),
    ({"CONNECTIONS_PER_CLIENT": "5"}, 256, 5, 320),
])
def test_queue_and_per_client_limits(env, queue, per_client, upstream):
    resolved = resolve(env)
    assert resolved.values["QUEUE_SIZE"] == str(queue)
    assert resolved.values["CONNECTIONS_PER_CLIENT"] == str(per_client)
    assert resolved.derived["UPSTREAM_MAX_CONNS"] == str(upstream)


@pytest.mark.parametrize("mount, memory, space, slots", [
    (Mount("/tmp", "tmpfs", 256 << 20), None, "128m", "12"),  # --tmpfs /tmp:size=256m
    (Mount("/tmp", "tmpfs", 12 * GiB), 512 << 20, "256m", "25"),  # --tmpfs /tmp --memory 512m
    (Mount("/", "overlay", 100 * GiB), 512 << 20, "51200m", "5120"),  # disk, not memory
])
def test_upload_space_follows_the_file_system(mount, memory, space, slots):
    resolved = resolve(host=FakeHost(mount=mount, memory=memory))
    assert resolved.values["UPLOAD_SPACE"] == space
    current = resolved.record()
    assert body.slots(current, body.limit(current, None)) == (int(slots), max(int(slots) // 4, 1))


def test_no_body_limit_means_no_upload_slots():
    current = resolve({"MAX_BODY_SIZE": "0"}).record()
    assert body.slots(current, body.limit(current, None)) == (0, 0)


def test_listen_queue_is_clamped_to_somaxconn():
    resolved = resolve({"QUEUE_SIZE": "2000"}, host=FakeHost(somaxconn=128))
    assert resolved.derived["UWSGI_LISTEN"] == "128"
    assert any("somaxconn is 128" in note for note in resolved.notes)


def test_nginx_connections_follow_the_open_files_limit():
    assert resolve().values["NGINX_WORKER_CONNECTIONS"] == str(layout.NGINX_CONNECTIONS_TOTAL // 2)
    tight = resolve(host=FakeHost(files=4096))
    assert int(tight.derived["NGINX_OPEN_FILES"]) <= 4096


@pytest.mark.parametrize("counted", [True, False])
@pytest.mark.parametrize("line", [1024, 8 * 1024, 12000, 16 * 1024, 20 * 1024, 24 * 1024])
def test_uwsgi_takes_the_largest_header_nginx_lets_through(counted, line):
    # layout.py: a header of W bytes in L lines makes W + 6 L bytes of
    # variables, plus the request line again and ~1.5 KB. With max_headers
    # L is bounded; without it, L can be W / 5 (2-byte names).
    buffers = layout.header_buffers(line, counted)
    assert 1 <= buffers <= 4
    resolved = resolve({"MAX_LINE_SIZE": str(line)}, host=FakeHost(counts_headers=counted))
    assert resolved.derived["HEADER_BUFFERS"] == str(buffers) and resolved.derived["HEADER_LINE"] == str(line)
    nginx_header = layout.HEADER_FIRST_BUFFER + buffers * line
    for request_line in (0, line):  # which also takes a buffer
        header = nginx_header - request_line
        lines = min(header // 5, layout.MAX_HEADER_LINES) if counted else header // 5
        assert 2 * request_line + header + 6 * lines + 1536 <= layout.UWSGI_BUFFER_SIZE, (request_line, lines)
    assert layout.uwsgi_max_vars(line, buffers) >= nginx_header // 4


def test_the_default_line_admits_real_apps_long_links_in_the_same_header_room():
    # 16 KB lines (Superset's chart links) in two buffers: the same 33 KB of
    # header as nginx's default 4 x 8 KB, where nginx counts the lines.
    derived = resolve(host=FakeHost(counts_headers=True)).derived
    assert (derived["HEADER_LINE"], derived["HEADER_BUFFERS"]) == (str(16 * 1024), "2")
    # The app's answer may echo the line twice (a redirect to ?next=...).
    assert int(derived["PROXY_HEADER_BUFFER"]) >= 2 * 16 * 1024
    eight = resolve({"MAX_LINE_SIZE": "8k"}, host=FakeHost(counts_headers=True))
    assert eight.derived["HEADER_BUFFERS"] == "4"


def test_gevent_defaults_follow_from_its_connections():
    resolved = resolve({"WORKER_CLASS": "gevent"}, host=FakeHost(cpus=4))
    values, derived = resolved.values, resolved.derived
    assert values["UWSGI_PROCESSES"] == "1" and values["WORKER_CONNECTIONS"] == "2000"
    assert values["QUEUE_SIZE"] == "64" and values["CONNECTIONS_PER_CLIENT"] == "2064"
    assert derived["UPSTREAM_MAX_CONNS"] == "2064"
    # nginx waits for a silent stream a little longer than the wrapper does.
    assert derived["UPSTREAM_TIMEOUT"] == str(120 + 5)
    assert resolve({"WORKER_CLASS": "gevent", "REQUEST_TIMEOUT": "300"}).derived["UPSTREAM_TIMEOUT"] == "305"
    # sync: 2 s past REQUEST_TIMEOUT, by when the watchdog has answered.
    assert resolve({}).derived["UPSTREAM_TIMEOUT"] == "32"


def test_worker_max_memory_is_a_fair_share_of_the_memory_limit():
    # 2 CPUs: 2 processes share 90 % of 1 GiB.
    assert resolve({}, host=FakeHost(memory=GiB)).values["WORKER_MAX_MEMORY"] == "460m"
    assert resolve({}, host=FakeHost()).values["WORKER_MAX_MEMORY"] == "0"  # no limit: off
    assert resolve({"WORKER_MAX_MEMORY": "1g"}).typed["WORKER_MAX_MEMORY"] == GiB


def test_a_recycled_worker_has_the_reload_grace_for_its_requests():
    assert resolve({}).derived["WORKER_RELOAD_MERCY"] == "300"
    assert resolve({"RELOAD_GRACE": "5", "REQUEST_TIMEOUT": "60"}).derived["WORKER_RELOAD_MERCY"] == "62"


# --- the pids limit --------------------------------------------------------

def test_the_pool_is_fitted_to_the_pids_limit():
    # 2 CPUs: 2 processes x (32 threads + 3) + the master, nginx's 3 and 12
    # more: 86 serving, 157 while a reload runs a second pool.
    assert resolve({}, host=FakeHost(pids=157)).values["UWSGI_THREADS"] == "32"
    assert resolve({}, host=FakeHost(pids=156)).values["UWSGI_THREADS"] == "31"
    # 70: two pools of 1 + 2 x (10 + 3) beside nginx's 3 and 12 more is 69.
    fitted = resolve({}, host=FakeHost(pids=70))
    assert fitted.values["UWSGI_THREADS"] == "10" and "UWSGI_THREADS" in fitted.defaulted
    assert any("UWSGI_THREADS lowered from 32 to 10" in note for note in fitted.notes)
    # The queue follows the threads it has.
    assert fitted.values["QUEUE_SIZE"] == str(max(64, 4 * 2 * 10))
    assert fitted.derived["RELOAD_ROOM"] == "1"
    # Room for one pool only (30: two pools of one thread each take 33, one
    # of 4 threads 30): the most threads that fit, and a SIGHUP keeps the running code.
    tight = resolve({}, host=FakeHost(pids=30))
    assert tight.values["UWSGI_THREADS"] == "4" and tight.derived["RELOAD_ROOM"] == "0"
    assert any("SIGHUP keeps the running code" in note for note in tight.notes)


def test_a_third_pool_needs_room_under_the_pids_limit_now():
    # A reload while an earlier one's pool still finishes: one more pool of
    # 1 + 2 x (32 + 3) = 71 must fit in what the limit leaves now (the
    # arbiter compares: tests/test_arbiter_reload.py).
    assert resolve({}).derived["POOL_PIDS"] == "71"


@pytest.mark.parametrize("env, pids, named", [
    ({}, 20, ["pids limit (20", "UWSGI_THREADS or UWSGI_PROCESSES"]),
    ({"UWSGI_THREADS": "16"}, 50, ["pids limit (50", "UWSGI_THREADS=16", "needs about 54"]),
    ({"WORKER_CLASS": "gevent", "UWSGI_PROCESSES": "4"}, 40, ["pids limit (40", "lower UWSGI_PROCESSES"]),
])
def test_a_pool_that_cannot_fit_the_pids_limit_is_refused(env, pids, named):
    with pytest.raises(settings.SettingError) as error:
        resolve(env, host=FakeHost(pids=pids))
    for text in named:
        assert text in str(error.value)


# --- resolved once: what a hook exports is all the second pass sees --------

def test_a_hook_changing_an_input_recomputes_what_depends_on_it():
    # The pass before the hooks exports nothing, so the pass after them sees
    # the user's environment plus what a *.envsh hook exported.
    first = resolve()
    second = resolve({"UWSGI_PROCESSES": "10"})
    assert (first.values["QUEUE_SIZE"], second.values["QUEUE_SIZE"]) == ("256", "1280")
    assert second.values["CONNECTIONS_PER_CLIENT"] == "1600"


def test_only_the_shells_own_values_leave_python(monkeypatch):
    # The entry-point's shell gets the four values its own steps use before
    # the record exists, under their own names, as data (no eval); every
    # other setting reaches the servers and the arbiter through the record.
    from flaskbox.__main__ import shell_records

    monkeypatch.setattr(os, "environ", {})
    records = shell_records(resolve({"QUEUE_SIZE": "7"})).split(b"\0")
    assert records[:-1:3] == [b"set"] * 4
    assert records[1:-1:3] == [b"RUNTIME_DIR", b"APP_MODULE", b"PRE_START_PATH", b"INSTALL_ON_START"]


@pytest.mark.parametrize("timeout, drain", [(10, 5), (6, 1), (30, 25)])
def test_the_stop_timeout_gives_nginx_what_uwsgi_and_the_exit_leave(timeout, drain):
    assert resolve({"STOP_TIMEOUT": str(timeout)}).derived["STOP_DRAIN_SECONDS"] == str(drain)
    assert layout.stop_drain(timeout) == drain
    assert layout.STOP_DRAIN_SECONDS == layout.stop_drain(layout.STOP_TIMEOUT_SECONDS) == 5


def test_the_record_round_trips_typed(tmp_path):
    resolved = resolve({"RUNTIME_DIR": str(tmp_path), "ALLOWED_HOSTS": "a.example", "QUEUE_SIZE": "7"})
    place = record.runtime({"RUNTIME_DIR": str(tmp_path) + "/"})
    record.write(resolved.record(), place)
    loaded = record.load(place)
    assert loaded == resolved.record()
    assert loaded["QUEUE_SIZE"] == 7 and loaded["ALLOWED_HOSTS"] == ["a.example"]
    assert loaded.mode == "production"
    assert loaded.text["MAX_BODY_SIZE"] == "10m" and loaded.derived["CPUS"] == "2"
    assert not list(tmp_path.glob("*.part"))


def test_passed_through_uwsgi_options():
    env = {"UWSGI_MAX_REQUESTS": "1000", "UWSGI_PROCESSES": "3", "UWSGI_INI": "/x.ini", "UWSGI_RELOADS": "2",
           "UWSGI_DISABLE_LOGGING": "false"}
    assert settings.uwsgi_options(env) == [("disable-logging", "false"), ("max-requests", "1000")]


def test_runtime_dirs_default_is_written_once():
    # The table's default is layout.Runtime.DEFAULT; bash cannot import it,
    # so healthcheck.sh's own copy is held to it here.
    from helpers import REPO

    assert settings.BY_NAME["RUNTIME_DIR"].default == layout.Runtime.DEFAULT
    assert f"${{RUNTIME_DIR:-{layout.Runtime.DEFAULT}}}" in (REPO / "healthcheck.sh").read_text()
