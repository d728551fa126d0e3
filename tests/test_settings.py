"""The settings table (lib/flaskbox/settings/) and the configs rendered
from it, without a container: every accepted and refused form, every
computed default, in milliseconds. test_entrypoint.py checks the wiring: a
refused value stops a real container with exit code 2."""

import re
import tempfile
from pathlib import Path

import pytest

from flaskbox import layout, record, render, settings
from flaskbox.host import Host, Mount
from helpers import REPO

GiB = 1 << 30


# An /app with an app.py, as the sample image has.
SAMPLE_APP = Path(tempfile.mkdtemp(prefix="flaskbox-app-"))
(SAMPLE_APP / "app.py").write_text("app = None\n")


class FakeHost(Host):
    """A container with the given CPUs, memory and RUNTIME_DIR file system,
    and an /app with an app.py (or `app_dir`)."""

    def __init__(self, cpus=2, memory=None, mount=None, somaxconn=4096, port_start=0, files=1 << 20,
                 app_dir=SAMPLE_APP, counts_headers=True, pids=None):
        super().__init__("/nonexistent")
        self._pids = pids
        self._counts_headers = counts_headers
        self._app_dir = Path(app_dir)
        self._cpus, self._memory = cpus, memory
        self._mount = mount or Mount("/", "overlay", 100 * GiB)
        self._somaxconn, self._port_start, self._files = somaxconn, port_start, files

    @property
    def app_dir(self):
        return self._app_dir

    def cpus(self):
        return self._cpus

    def memory_limit(self):
        return self._memory

    def mount_of(self, path):
        return self._mount

    def somaxconn(self):
        return self._somaxconn

    def unprivileged_port_start(self):
        return self._port_start

    def open_files_limit(self):
        return self._files

    def nginx_counts_headers(self):
        return self._counts_headers

    def pids_limit(self):
        return self._pids


def resolve(env=None, mode="production", host=None):
    return settings.resolve(mode, env or {}, host or FakeHost())


# --- forms: every setting, accepted and refused --------------------------

ACCEPTED = {
    "PORT": ["1", "80", "8080", "65535"],
    "APP_MODULE": ["app", "app:app", "my_pkg.wsgi:application", "a.b.c:_x", "flaskr:create_app()",
                   "flaskr:create_app('production', debug=False)", "m:make(1, [2, 3], x={'a': None})"],
    "RUNTIME_DIR": ["/tmp/flaskbox", "/run/x", "/tmp/flaskbox/"],
    "MAX_BODY_SIZE": ["0", "512k", "10m", "1G", "4096"],
    "REQUEST_TIMEOUT": ["1", "30", "86400"],
    "RELOAD_GRACE": ["0", "300", "86400"],
    "IMPORT_TIMEOUT": ["0", "120", "86400"],
    "SHARE_PORT": ["0", "1"],
    "DEBUG_HOST": ["0.0.0.0", "127.0.0.1", "::", "::1", "192.168.1.5"],
    "STICKY_CLIENTS": ["0", "1"],
    "FILE_VARS_IGNORE": ["", "LOG_FILE", "LOG_FILE, PID_FILE"],
    "WORKER_MAX_MEMORY": ["0", "300m", "1g", "524288000"],
    "UWSGI_PROCESSES": ["1", "1024"],
    "UWSGI_THREADS": ["1", "8"],
    "NGINX_WORKER_PROCESSES": ["1", "3"],
    "NGINX_WORKER_CONNECTIONS": ["64", "2048", "65535"],
    "QUEUE_SIZE": ["0", "64", "100000"],
    "CONNECTIONS_PER_CLIENT": ["1", "500"],
    "UPLOAD_SPACE": ["64m", "2g"],
    "RESPONSE_SPACE": ["64m", "2g", "1024k"],
    "STATIC_ENABLED": ["0", "1"],
    "STATIC_URL": ["", "/static", "/assets/", "/a/b.c~d-e_f"],
    "STATIC_PATH": ["", "/app/static", "/srv/www/"],
    "STATIC_INDEX": ["0", "1"],
    "PRE_START_PATH": ["/app/prestart.sh", "/app/scripts/migrate.sh"],
    "LOG_FORMAT": ["text", "json"],
    "METRICS_PORT": ["", "1", "9100", "65535"],
    "TRUSTED_PROXIES": ["", "10.0.0.0/8", "10.0.0.0/8,192.168.1.1", "10.0.0.1 fd00::/8",
                        "172.16.0.0/12, ::1"],
    "ALLOWED_HOSTS": ["", "example.com", ".example.com, *.api.example.org", "127.0.0.1,[::1]", "EXAMPLE.com"],
    "ENTRYPOINT_QUIET_LOGS": ["0", "1"],
    "INSTALL_ON_START": ["0"],
    "WORKER_CLASS": ["sync", "gevent"],
    "URL_PREFIX": ["", "/shop", "/shop/", "/a/b.c"],
    "WRITABLE_PATHS": ["", "/app/.data/", "/app/pkg/../.data/ /app/pkg/secret_key", "/app/a,/app/b/"],
    # The files themselves are judged only once both are set (test_tls_files.py).
    "TLS_CERT": [""],
    "TLS_KEY": [""],
    "TLS_PORT": ["443", "8443", "65535"],
    "TLS_REDIRECT": ["0"],
    "HSTS_MAX_AGE": ["0", "300", "31536000", "999999999"],
    "CLIENT_STREAM_SHARE": ["1", "80", "100"],
    "COMPRESS_APP_RESPONSES": ["0", "1"],
}
# Accepted with WORKER_CLASS=gevent only (test_worker_class_settings_belong_together).
ACCEPTED_WITH_GEVENT = {
    "WORKER_CONNECTIONS": ["1", "2000", "100000"],
    "STREAM_IDLE_TIMEOUT": ["1", "120", "86400"],
    "STREAM_MAX_DURATION": ["0", "3600", "604800"],
}
REFUSED = {
    "APP_MODE": ["staging", ""],
    "PORT": ["abc", "70000", "0", "-1", "8080.0", " 80"],
    "APP_MODULE": ["not a module", "app:", ":app", "1app", "app;rm", "app:create_app(x)",
                   "app:create_app(**options)", "app:a.b", "app:__import__('os').system('id')",
                   "app:create_app()()"],
    "RUNTIME_DIR": ["tmp", "/tmp/with space", "/"],
    "MAX_BODY_SIZE": ["lots", "10mb", "-1", "1.5m"],
    "REQUEST_TIMEOUT": ["0", "86401", "3s", ""],
    "RELOAD_GRACE": ["-1", "86401", "5m", ""],
    "IMPORT_TIMEOUT": ["-1", "86401", "2m", ""],
    "SHARE_PORT": ["yes", "2", ""],
    "DEBUG_HOST": ["localhost", "0.0.0.0:5000", "", "127.0.0.256"],
    "STICKY_CLIENTS": ["yes", "2", ""],
    "FILE_VARS_IGNORE": ["LOG", "LOG_FILE;PID_FILE", "1_FILE"],
    "WORKER_MAX_MEMORY": ["300 MB", "-1", "1t", ""],
    "UWSGI_PROCESSES": ["many", "0", "1025"],
    "UWSGI_THREADS": ["0"],
    "NGINX_WORKER_PROCESSES": ["2.5", "all"],
    "NGINX_WORKER_CONNECTIONS": ["63", "65536", "lots"],
    "QUEUE_SIZE": ["-1", "100001", "lots"],
    "CONNECTIONS_PER_CLIENT": ["0", "unlimited"],
    "UPLOAD_SPACE": ["big", "0.5g"],
    "RESPONSE_SPACE": ["lots", "1.5g", "-1m"],
    "STATIC_ENABLED": ["yes", "true"],
    "STATIC_URL": ["static", "/", "/a b", "/a/../b?"],
    "STATIC_PATH": ["/app/static dir", "relative"],
    "STATIC_INDEX": ["yes"],
    "PRE_START_PATH": ["prestart.sh", "/app/pre start.sh"],
    "LOG_FORMAT": ["xml"],
    "METRICS_PORT": ["0", "65536", "nine", "9100.0", " 9100", "off"],
    "TRUSTED_PROXIES": ["10.0.0.0/8; include /etc/passwd", "10.0.0.0/33", "example.com",
                        "10.0.0.0/8\n1.1.1.1;"],
    "ALLOWED_HOSTS": ["exa mple.com;", "*", "-bad.example", "example.com/path", "a..b"],
    "ENTRYPOINT_QUIET_LOGS": ["maybe"],
    "DEBUG_RELOADER": ["watchman"],
    "INSTALL_ON_START": ["yes"],
    "WORKER_CLASS": ["async", "eventlet", "Gevent", ""],
    "WORKER_CONNECTIONS": ["0", "100001", "lots"],
    "STREAM_IDLE_TIMEOUT": ["0", "86401", "2m"],
    "STREAM_MAX_DURATION": ["-1", "604801", "1h"],
    "URL_PREFIX": ["shop", "/", "/a b", "/shop?x", "/shop;x"],
    "WRITABLE_PATHS": ["/tmp/x", "relative/path", "/app", "/app/", "/app/instance/db", "/app/instance/",
                       "/app/../etc/passwd", "/app/pkg/../../etc/"],
    "TLS_CERT": ["tls.crt", "/etc/tls/my cert.pem", "/etc/tls/$x.pem", "/etc/tls/a.pem;"],
    "TLS_KEY": ["tls.key", "/etc/tls/my key.pem", "/etc/tls/{x}.pem"],
    "TLS_PORT": ["0", "70000", "https", "8443.0"],
    "TLS_REDIRECT": ["yes", "true", "2"],
    "HSTS_MAX_AGE": ["-1", "1y", "1000000000", ""],
    "CLIENT_STREAM_SHARE": ["0", "101", "50%", "0.5", ""],
    "COMPRESS_APP_RESPONSES": ["yes", "off", ""],
}


def test_writable_paths_are_normalized():
    # `..` resolved (the form a real app wrote), a folder keeps its /.
    value = resolve({"WRITABLE_PATHS": "/app/pkg/../.data/,/app/pkg//key"}).values["WRITABLE_PATHS"]
    assert value == "/app/.data/ /app/pkg/key"


@pytest.mark.parametrize("name, value", [(n, v) for n, values in ACCEPTED.items() for v in values])
def test_accepted_forms(name, value):
    resolved = resolve({name: value})
    assert resolved.values[name] == settings.BY_NAME[name].normalize(value)


@pytest.mark.parametrize("name, value", [(n, v) for n, values in ACCEPTED_WITH_GEVENT.items()
                                         for v in values])
def test_accepted_forms_with_gevent(name, value):
    resolved = resolve({"WORKER_CLASS": "gevent", name: value})
    assert resolved.values[name] == value


@pytest.mark.parametrize("name, value", [(n, v) for n, values in REFUSED.items() for v in values])
def test_refused_forms_name_the_variable_and_the_form(name, value):
    mode = "debug" if name == "DEBUG_RELOADER" else "production"
    with pytest.raises(settings.SettingError) as error:
        if name == "APP_MODE":
            # The mode is checked where it is chosen (entry-point.sh, -d or
            # APP_MODE); the table holds its accepted values.
            assert value not in settings.MODES
            raise settings.SettingError(f"APP_MODE='{value}' is not valid: expected production or debug")
        resolve({name: value}, mode=mode)
    message = str(error.value)
    assert f"{name}='{value}' is not valid: expected {settings.BY_NAME[name].form}" == message


def test_every_setting_has_a_form_in_both_lists():
    # A new setting comes with its accepted and refused values here.
    accepted = {*ACCEPTED, *ACCEPTED_WITH_GEVENT}
    assert set(settings.BY_NAME) - {"APP_MODE", "UWSGI_INI", "DEBUG_RELOADER", "LOG_FORMAT"} <= accepted
    assert set(settings.BY_NAME) - {"UWSGI_INI"} <= set(REFUSED)


@pytest.mark.parametrize("mode", settings.MODES)
def test_every_default_passes_its_own_check(mode):
    resolved = resolve(mode=mode)
    for setting in settings.SETTINGS:
        assert setting.parse(resolved.values[setting.name]) == resolved.typed[setting.name], setting.name
    assert resolved.values["APP_MODE"] == mode


def test_values_are_carried_typed():
    # Each form converts once, at resolve; the record's readers get these.
    typed = resolve({"MAX_BODY_SIZE": "2m", "STATIC_INDEX": "1", "TRUSTED_PROXIES": "10.0.0.1, fd00::/8",
                     "ALLOWED_HOSTS": "Example.com ::1", "QUEUE_SIZE": "7"}).typed
    assert typed["MAX_BODY_SIZE"] == 2 << 20 and typed["UPLOAD_SPACE"] == 50 << 30
    assert typed["STATIC_INDEX"] is True and typed["STATIC_ENABLED"] is True
    assert typed["TRUSTED_PROXIES"] == ["10.0.0.1/32", "fd00::/8"]
    assert typed["ALLOWED_HOSTS"] == ["example.com", "::1"]
    assert typed["QUEUE_SIZE"] == 7 and typed["REQUEST_TIMEOUT"] == 30 and typed["PORT"] == 80


def test_slashes_are_trimmed():
    values = resolve({"STATIC_URL": "/assets/", "STATIC_PATH": "/srv/www/", "RUNTIME_DIR": "/run/fb/"}).values
    trimmed = (values["STATIC_URL"], values["STATIC_PATH"], values["RUNTIME_DIR"])
    assert trimmed == ("/assets", "/srv/www", "/run/fb")


# --- rules across settings --------------------------------------------------

def test_install_on_start_is_refused_in_production():
    with pytest.raises(settings.SettingError, match="INSTALL_ON_START=1 works in debug mode only"):
        resolve({"INSTALL_ON_START": "1"})
    assert resolve({"INSTALL_ON_START": "1"}, mode="debug").values["INSTALL_ON_START"] == "1"


def test_debugger_pin_cannot_be_switched_off():
    with pytest.raises(settings.SettingError, match="WERKZEUG_DEBUG_PIN=off"):
        resolve({"WERKZEUG_DEBUG_PIN": "off"}, mode="debug")


@pytest.mark.parametrize("port, start, refused", [("80", 1024, True), ("80", 0, False), ("1023", 1024, True),
                                                  ("1024", 1024, False), ("8080", 9000, False)])
def test_privileged_ports(port, start, refused):
    host = FakeHost(port_start=start)
    if refused:
        with pytest.raises(settings.SettingError, match=f"PORT={port} is below {start}"):
            resolve({"PORT": port}, host=host)
    else:
        assert resolve({"PORT": port}, host=host).values["PORT"] == port


def test_uwsgi_variables_must_be_one_line():
    with pytest.raises(settings.SettingError, match="UWSGI_ROUTE holds a line break"):
        resolve({"UWSGI_ROUTE": "a\nb"})


def test_unreadable_uwsgi_ini_is_refused(tmp_path):
    with pytest.raises(settings.SettingError,
                       match="UWSGI_INI='/nonexistent.ini' is not valid: expected the path of a readable"):
        resolve({"UWSGI_INI": "/nonexistent.ini"})
    ini = tmp_path / "extra.ini"
    ini.write_text("[uwsgi]\n")
    assert resolve({"UWSGI_INI": str(ini)}).values["UWSGI_INI"] == str(ini)


def test_upload_space_below_the_body_limit():
    with pytest.raises(settings.SettingError, match="UPLOAD_SPACE='5m' is smaller than MAX_BODY_SIZE=10m"):
        resolve({"UPLOAD_SPACE": "5m"})
    # Computed from a tiny /tmp, it is raised to one upload, and the log says so.
    small = FakeHost(mount=Mount("/tmp", "tmpfs", 8 << 20))
    resolved = resolve(host=small)
    assert resolved.values["UPLOAD_SPACE"] == "10m" and resolved.derived["UPLOAD_SLOTS"] == "1"
    assert any("one upload at a time" in note for note in resolved.notes)


# --- computed defaults -----------------------------------------------------

@pytest.mark.parametrize("cpus, processes, nginx", [(1, 2, 1), (2, 4, 2), (4, 8, 4), (64, 32, 64)])
def test_worker_counts_follow_the_cpus(cpus, processes, nginx):
    values = resolve(host=FakeHost(cpus=cpus)).values
    assert (values["UWSGI_PROCESSES"], values["UWSGI_THREADS"], values["NGINX_WORKER_PROCESSES"]) == \
        (str(processes), "16", str(nginx))


@pytest.mark.parametrize("env, queue, per_client, upstream", [
    ({}, 256, 320, 320),  # 2 CPUs: 4 processes x 16 threads; 4 waiting per thread
    ({"UWSGI_PROCESSES": "8"}, 512, 640, 640),
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
    assert resolved.derived["UPLOAD_SLOTS"] == slots
    assert resolved.derived["UPLOAD_SLOTS_PER_CLIENT"] == str(max(int(slots) // 4, 1))


def test_no_body_limit_means_no_upload_slots():
    assert resolve({"MAX_BODY_SIZE": "0"}).derived["UPLOAD_SLOTS"] == "0"


def test_listen_queue_is_clamped_to_somaxconn():
    resolved = resolve({"QUEUE_SIZE": "2000"}, host=FakeHost(somaxconn=128))
    assert resolved.derived["UWSGI_LISTEN"] == "128"
    assert any("somaxconn is 128" in note for note in resolved.notes)


def test_nginx_connections_follow_the_open_files_limit():
    assert resolve().values["NGINX_WORKER_CONNECTIONS"] == str(layout.NGINX_CONNECTIONS_TOTAL // 2)
    tight = resolve(host=FakeHost(files=4096))
    assert int(tight.derived["NGINX_OPEN_FILES"]) <= 4096


@pytest.mark.parametrize("counted", [True, False])
def test_uwsgi_takes_the_largest_header_nginx_lets_through(counted):
    # layout.py, HEADER_LINE: a header of W bytes in L lines makes W + 6 L
    # bytes of variables, plus the request line again and ~1.5 KB. With
    # max_headers L is bounded; without it, L can be W / 5 (2-byte names).
    buffers = layout.header_buffers(counted)
    assert buffers == (4 if counted else 3)
    assert resolve(host=FakeHost(counts_headers=counted)).derived["HEADER_BUFFERS"] == str(buffers)
    nginx_header = layout.HEADER_FIRST_BUFFER + buffers * layout.HEADER_LINE
    for request_line in (0, layout.HEADER_LINE):  # which also takes a buffer
        header = nginx_header - request_line
        lines = min(header // 5, layout.MAX_HEADER_LINES) if counted else header // 5
        assert 2 * request_line + header + 6 * lines + 1536 <= layout.UWSGI_BUFFER_SIZE
    assert layout.uwsgi_max_vars(buffers) >= nginx_header // 4


# --- resolved once: what a hook exports is all the second pass sees -------

def test_a_hook_changing_an_input_recomputes_what_depends_on_it():
    # The pass before the hooks exports nothing, so the pass after them sees
    # the user's environment plus what a *.envsh hook exported.
    first = resolve()
    second = resolve({"UWSGI_PROCESSES": "10"})
    assert (first.values["QUEUE_SIZE"], second.values["QUEUE_SIZE"]) == ("256", "640")
    assert second.values["CONNECTIONS_PER_CLIENT"] == "800"


def test_only_the_shells_own_values_leave_python():
    # The entry-point's shell gets a handful of values for itself; every
    # other setting reaches the servers through the record alone.
    shell = resolve({"QUEUE_SIZE": "7"}).shell()
    assert set(shell) == {"RUNTIME_DIR", "PORT", "APP_MODULE", "INSTALL_ON_START", "PRE_START_PATH",
                          "METRICS_PORT", "TLS_CERT", "FLASKBOX_RELOAD_GRACE", "FLASKBOX_STOP_DRAIN_SECONDS",
                          "FLASKBOX_STOP_MERCY_SECONDS", "FLASKBOX_STOP_KILL_AFTER_SECONDS",
                          "FLASKBOX_STOP_STREAMS_SIGNAL", "FLASKBOX_OOM_KILLS", "FLASKBOX_RELOAD_ROOM",
                          "FLASKBOX_IMPORT_TIMEOUT", "DEBUG_HOST", "FLASKBOX_HOST_NETWORK"}
    assert shell["FLASKBOX_STOP_DRAIN_SECONDS"] == str(layout.STOP_DRAIN_SECONDS)


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


# --- rendering --------------------------------------------------------------

def rendered(tmp_path, env=None):
    resolved = resolve({"RUNTIME_DIR": str(tmp_path / "run"), **(env or {})})
    paths = render.render_production(resolved.record(), env or {}, resolved.notes, REPO)
    return resolved, {path.name: path.read_text() for path in paths}


def test_templates_use_only_known_placeholders(tmp_path):
    _, files = rendered(tmp_path)
    for name, text in files.items():
        assert not re.search(r"\$\{[A-Z_]+\}", text), name


def test_unknown_placeholder_fails_loudly():
    with pytest.raises(render.TemplateError, match=r"\$\{NO_SUCH\}"):
        render.fill("x ${NO_SUCH} y", {})
    # nginx's own variables pass through.
    assert render.fill("$host ${uri} ${PORT}", {"PORT": "80"}) == "$host ${uri} 80"


def test_stop_budget_is_rendered_from_one_place(tmp_path):
    _, files = rendered(tmp_path)
    assert f"worker_shutdown_timeout {layout.STOP_DRAIN_SECONDS}s;" in files["nginx.conf"]
    assert f"reload-mercy = {layout.STOP_MERCY_SECONDS}" in files["uwsgi.ini"]
    # A recycled worker's other threads finish their requests (RELOAD_GRACE).
    assert "worker-reload-mercy = 300" in files["uwsgi.ini"]


def test_lists_become_include_files(tmp_path):
    env = {"TRUSTED_PROXIES": "10.0.0.1, fd00::/8", "ALLOWED_HOSTS": ".example.com ::1"}
    _, files = rendered(tmp_path, env)
    assert "10.0.0.1/32 1;" in files["trusted-proxies.conf"]
    assert "set_real_ip_from fd00::/8;" in files["real-ip.conf"]
    assert files["allowed-hosts.conf"].splitlines()[1:] == ["default 0;", ".example.com 1;", "[::1] 1;"]
    _, files = rendered(tmp_path / "any")
    assert "default 1;" in files["allowed-hosts.conf"]


def test_user_uwsgi_options_come_last(tmp_path):
    ini = tmp_path / "extra.ini"
    ini.write_text("[uwsgi]\nmemory-report = true\n")
    _, files = rendered(tmp_path, {"UWSGI_INI": str(ini), "UWSGI_MAX_REQUESTS": "77"})
    text = files["uwsgi.ini"]
    assert text.index("max-requests = 50000") < text.index("memory-report = true") \
        < text.index("max-requests = 77")


def test_a_tiangolo_uwsgi_ini_names_the_app_and_loses_what_flaskbox_owns(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "main.py").write_text("app = None\n")
    (app_dir / "uwsgi.ini").write_text("[uwsgi]\n; tiangolo's example\nmodule = main\ncallable = app\n"
                                       "socket = /tmp/uwsgi.sock\nplugins = python3\nprocesses = 8\n"
                                       "memory-report = true\n")
    host = FakeHost(app_dir=app_dir)
    resolved = resolve({"RUNTIME_DIR": str(tmp_path / "run")}, host=host)
    assert resolved.values["UWSGI_INI"] == str(app_dir / "uwsgi.ini")
    assert resolved.values["APP_MODULE"] == "main:app"
    # The pool's size is a setting's: taken from the ini, and said.
    assert resolved.values["UWSGI_PROCESSES"] == "8"
    assert f"{app_dir / 'uwsgi.ini'}: `processes = 8` taken as UWSGI_PROCESSES=8" in resolved.notes
    render.render_production(resolved.record(), {}, resolved.notes, REPO)
    text = (tmp_path / "run" / "uwsgi.ini").read_text()
    assert "memory-report = true" in text and "processes = 8" in text
    user_part = text.split("without what names the app")[-1]
    for owned in ("module = main", "/tmp/uwsgi.sock", "plugins", "processes"):
        assert owned not in user_part
    assert [note for note in resolved.notes if "socket = /tmp/uwsgi.sock" in note]


# --- the app, its other names, tiangolo's variables --------------------------

@pytest.mark.parametrize("files, expected", [
    (["wsgi.py", "app.py", "main.py"], "wsgi"),
    (["app.py", "main.py"], "app"),
    (["main.py"], "main"),
])
def test_app_module_is_found_like_flask_run_then_main(tmp_path, files, expected):
    for name in files:
        (tmp_path / name).write_text("app = None\n")
    assert resolve(host=FakeHost(app_dir=tmp_path)).values["APP_MODULE"] == expected


def test_no_app_names_what_is_there(tmp_path):
    (tmp_path / "flaskr").mkdir()
    (tmp_path / "flaskr" / "__init__.py").write_text("")
    with pytest.raises(settings.SettingError, match="holds the package flaskr: set APP_MODULE=flaskr"):
        resolve(host=FakeHost(app_dir=tmp_path))


@pytest.mark.parametrize("env, name, value", [
    ({"FLASK_APP": "flaskr:create_app()"}, "APP_MODULE", "flaskr:create_app()"),
    ({"LISTEN_PORT": "8080"}, "PORT", "8080"),
    ({"NGINX_MAX_UPLOAD": "0"}, "MAX_BODY_SIZE", "0"),
    ({"NGINX_WORKER_PROCESSES": "auto"}, "NGINX_WORKER_PROCESSES", "2"),
])
def test_other_names_for_settings(env, name, value):
    assert resolve(env).values[name] == value


def test_other_names_must_agree():
    with pytest.raises(settings.SettingError, match="LISTEN_PORT='81' and PORT='8080' disagree"):
        resolve({"LISTEN_PORT": "81", "PORT": "8080"})
    with pytest.raises(settings.SettingError, match="FLASK_APP='a' and APP_MODULE='b' disagree"):
        resolve({"FLASK_APP": "a", "APP_MODULE": "b"})
    assert resolve({"FLASK_APP": "b", "APP_MODULE": "b"}).values["APP_MODULE"] == "b"


def test_tiangolo_variables_without_an_equivalent_are_refused_naming_ours():
    expected = "NGINX_WORKER_OPEN_FILES='4096' is not a flaskbox setting: .*NGINX_WORKER_CONNECTIONS"
    with pytest.raises(settings.SettingError, match=expected):
        resolve({"NGINX_WORKER_OPEN_FILES": "4096"})


def test_a_replacement_nginx_conf_is_refused(tmp_path):
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "nginx.conf").write_text("events {}\n")
    with pytest.raises(settings.SettingError, match="move your rules to /app/nginx.d/"):
        resolve(host=FakeHost(app_dir=tmp_path))
    assert resolve(mode="debug", host=FakeHost(app_dir=tmp_path)).values["APP_MODULE"] == "app"


def test_the_sample_next_to_other_code_is_refused_unless_mounted(tmp_path, monkeypatch):
    import hashlib

    app_dir = tmp_path / "app"
    (app_dir / "flaskr").mkdir(parents=True)
    (app_dir / "flaskr" / "__init__.py").write_text("")
    sample = (REPO / "app" / "app.py").read_bytes()
    (app_dir / "app.py").write_bytes(sample)
    fingerprint = tmp_path / "sample-app.sha256"
    fingerprint.write_text(f"{hashlib.sha256(sample).hexdigest()}  /app/app.py\n")
    monkeypatch.setattr(settings.resolve_module, "SAMPLE_FINGERPRINT", fingerprint)
    with pytest.raises(settings.SettingError, match=r"is flaskbox's sample app.*\(flaskr/\)"):
        resolve(host=FakeHost(app_dir=app_dir))
    # Named, it is served; mounted (the repository's app/ in debug mode), it is the developer's.
    assert resolve({"APP_MODULE": "app"}, host=FakeHost(app_dir=app_dir)).values["APP_MODULE"] == "app"
    mounted = FakeHost(app_dir=app_dir, mount=Mount(str(app_dir), "ext4", GiB))
    assert resolve(mode="debug", host=mounted).values["APP_MODULE"] == "app"
    # An app.py of your own is never the sample.
    (app_dir / "app.py").write_text("app = None\n")
    assert resolve(host=FakeHost(app_dir=app_dir)).values["APP_MODULE"] == "app"


# --- worker classes ----------------------------------------------------------

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


@pytest.mark.parametrize("env, named", [
    ({"WORKER_CLASS": "gevent", "UWSGI_THREADS": "4"}, ["UWSGI_THREADS='4'", "WORKER_CONNECTIONS"]),
    ({"WORKER_CONNECTIONS": "100"}, ["WORKER_CONNECTIONS='100'", "WORKER_CLASS=gevent"]),
    ({"WORKER_CLASS": "sync", "STREAM_IDLE_TIMEOUT": "60"},
     ["STREAM_IDLE_TIMEOUT='60'", "WORKER_CLASS=gevent"]),
    ({"STREAM_MAX_DURATION": "0"}, ["STREAM_MAX_DURATION='0'", "WORKER_CLASS=gevent"]),
    ({"WORKER_CLASS": "gevent", "CLIENT_STREAM_SHARE": "50"},
     ["CLIENT_STREAM_SHARE='50'", "WORKER_CLASS=sync"]),
])
def test_worker_class_settings_belong_together(env, named):
    with pytest.raises(settings.SettingError) as error:
        resolve(env)
    for text in named:
        assert text in str(error.value)
    # Debug mode has no workers: the same environment is fine there.
    resolve(env, mode="debug")


def test_one_gevent_process_shares_one_socket(tmp_path):
    _, files = rendered(tmp_path, {"WORKER_CLASS": "gevent"})
    sockets = files["uwsgi-sockets.ini"]
    assert sockets.count("http-socket =") == 1 and "map-socket" not in sockets
    assert "hash" not in files["upstream.conf"] and "max_conns=2064;" in files["upstream.conf"]
    assert "ini = %p:gevent" in files["uwsgi.ini"]


def test_more_gevent_processes_keep_each_client_on_one(tmp_path):
    _, files = rendered(tmp_path, {"WORKER_CLASS": "gevent", "UWSGI_PROCESSES": "3"})
    sockets = files["uwsgi-sockets.ini"]
    for number in (1, 2, 3):
        assert f"uwsgi-{number}.sock\nmap-socket = {number - 1}:{number}\n" in sockets
    upstream = files["upstream.conf"]
    assert "hash $binary_remote_addr consistent;" in upstream
    # 3 x 2000 connections + a queue of 192, shared out.
    assert upstream.count("max_conns=2064;") == 3


def test_sync_workers_share_one_socket_and_leave_timeouts_to_the_watchdog(tmp_path):
    _, files = rendered(tmp_path)
    assert files["uwsgi-sockets.ini"].count("http-socket =") == 1
    assert "ini = %p:sync" in files["uwsgi.ini"]
    sync_section = files["uwsgi.ini"].split("\n[sync]\n")[1].split("\n[gevent]\n")[0]
    # uWSGI's per-process harakiri would take the other threads' requests down.
    assert "\nharakiri" not in sync_section and "\nthreads = 16\n" in sync_section
    assert "\noffload-threads = 1\n" in sync_section
    gevent_section = files["uwsgi.ini"].split("\n[gevent]\n")[1]
    assert "\nharakiri" not in gevent_section and "\ngevent = 2000\n" in gevent_section


def test_metrics_port_is_not_port():
    with pytest.raises(settings.SettingError, match="METRICS_PORT=8080 is PORT as well: expected empty"):
        resolve({"PORT": "8080", "METRICS_PORT": "8080"})
    assert resolve({"PORT": "8080", "METRICS_PORT": "9100"}).values["METRICS_PORT"] == "9100"


def test_sticky_clients_keep_each_sync_client_on_one_process(tmp_path):
    _, files = rendered(tmp_path, {"STICKY_CLIENTS": "1"})
    sockets, upstream = files["uwsgi-sockets.ini"], files["upstream.conf"]
    # 2 CPUs: 4 processes, each with a socket of its own in the generation's folder.
    for number in (1, 2, 3, 4):
        assert f"%(flaskbox_generation)/uwsgi-{number}.sock\nmap-socket = {number - 1}:{number}\n" in sockets
    assert "hash $binary_remote_addr consistent;" in upstream
    assert upstream.count("/uwsgi/current/uwsgi-") == 4
    # One process, or the default: one socket that any free process takes.
    one = rendered(tmp_path, {"STICKY_CLIENTS": "1", "UWSGI_PROCESSES": "1"})[1]
    assert "hash" not in one["upstream.conf"]
    assert resolve({}).values["STICKY_CLIENTS"] == "0"
    assert resolve({"WORKER_CLASS": "gevent"}).values["STICKY_CLIENTS"] == "1"


def test_nginx_reaches_the_current_generation_through_its_link(tmp_path):
    _, files = rendered(tmp_path)
    assert f"server unix:{tmp_path}/run/uwsgi/current/uwsgi.sock " in files["upstream.conf"]
    assert files["uwsgi-sockets.ini"].endswith("http-socket = %(flaskbox_generation)/uwsgi.sock\n")
    for line in ("stats = %(flaskbox_generation)/stats.sock",
                 "hook-accepting1-once = create:%(flaskbox_generation)/ready"):
        assert f"\n{line}\n" in files["uwsgi.ini"]


def test_worker_max_memory_is_a_fair_share_of_the_memory_limit():
    # 2 CPUs: 4 processes share 90 % of 1 GiB.
    assert resolve({}, host=FakeHost(memory=GiB)).values["WORKER_MAX_MEMORY"] == "230m"
    assert resolve({}, host=FakeHost()).values["WORKER_MAX_MEMORY"] == "0"  # no limit: off
    assert resolve({"WORKER_MAX_MEMORY": "1g"}).typed["WORKER_MAX_MEMORY"] == GiB


def test_a_recycled_worker_has_the_reload_grace_for_its_requests():
    assert resolve({}).derived["WORKER_RELOAD_MERCY"] == "300"
    assert resolve({"RELOAD_GRACE": "5", "REQUEST_TIMEOUT": "60"}).derived["WORKER_RELOAD_MERCY"] == "62"


def test_the_pool_is_fitted_to_the_pids_limit():
    # 2 CPUs: 4 processes x (16 threads + 3) + the master, nginx's 3 and 12
    # more: 92 serving, 169 while a reload runs a second pool.
    assert resolve({}, host=FakeHost(pids=169)).values["UWSGI_THREADS"] == "16"
    fitted = resolve({}, host=FakeHost(pids=100))
    assert fitted.values["UWSGI_THREADS"] == "7" and "UWSGI_THREADS" in fitted.defaulted
    assert any("UWSGI_THREADS lowered from 16 to 7" in note for note in fitted.notes)
    # The queue follows the threads it has.
    assert fitted.values["QUEUE_SIZE"] == str(max(64, 4 * 4 * 7))
    # Room for one pool only: the most threads that fit, and a SIGHUP keeps the running code.
    assert fitted.derived["RELOAD_ROOM"] == "1"
    tight = resolve({}, host=FakeHost(pids=40))
    assert tight.values["UWSGI_THREADS"] == "3" and tight.derived["RELOAD_ROOM"] == "0"
    assert any("SIGHUP keeps the running code" in note for note in tight.notes)


def test_a_third_pool_needs_room_under_the_pids_limit_now():
    # A reload while an earlier one's pool still finishes: one more pool of
    # 1 + 4 x (16 + 3) = 77 must fit in what the limit leaves now.
    from flaskbox.settings import pids
    values = resolve({}).values
    assert pids.room_for_another_pool(values, 300, 223)
    assert not pids.room_for_another_pool(values, 300, 224)
    assert pids.room_for_another_pool(values, None, 224)  # no limit
    assert pids.room_for_another_pool(values, 169, None)  # the count unreadable: as before


@pytest.mark.parametrize("env, pids, named", [
    ({}, 20, ["pids limit (20", "UWSGI_THREADS or UWSGI_PROCESSES"]),
    ({"UWSGI_THREADS": "16"}, 60, ["pids limit (60", "UWSGI_THREADS=16", "needs about 92"]),
    ({"WORKER_CLASS": "gevent", "UWSGI_PROCESSES": "4"}, 40, ["pids limit (40", "lower UWSGI_PROCESSES"]),
])
def test_a_pool_that_cannot_fit_the_pids_limit_is_refused(env, pids, named):
    with pytest.raises(settings.SettingError) as error:
        resolve(env, host=FakeHost(pids=pids))
    for text in named:
        assert text in str(error.value)


def test_tls_certificates_are_read_at_each_handshake(tmp_path):
    from flaskbox import tls

    conf = tls.server_conf({"TLS_CERT": "/etc/tls/a.crt", "TLS_KEY": "/etc/tls/a.key", "TLS_PORT": "8443"},
                           http2_directive=False)
    assert "ssl_certificate $flaskbox_tls_cert;" in conf and "ssl_certificate_key $flaskbox_tls_key;" in conf
    assert "/etc/tls/a.crt" not in conf  # the checked copies are what nginx reads
    nginx = rendered(tmp_path)[1]["nginx.conf"]
    assert f"default {tmp_path}/run/tls/current/cert.pem;" in nginx

