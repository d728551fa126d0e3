"""Every setting's accepted and refused forms (lib/flaskbox/settings/),
without a container, in milliseconds: each form converts once into the
typed value every later reader gets, each refused one names the variable
and the form expected; and the rules across settings (a value refused
because of another's). test_entrypoint.py checks the wiring: a refused
value stops a real container with exit code 2."""

import pytest

from fake_host import FakeHost, resolve
from flaskbox import settings
from flaskbox.host import Mount
from flaskbox.start import body

ACCEPTED = {
    "PORT": ["1", "80", "8080", "65535"],
    "APP_MODULE": ["app", "app:app", "my_pkg.wsgi:application", "a.b.c:_x", "flaskr:create_app()",
                   "flaskr:create_app('production', debug=False)", "m:make(1, [2, 3], x={'a': None})"],
    "RUNTIME_DIR": ["/tmp/flaskbox", "/run/x", "/tmp/flaskbox/"],
    "MAX_BODY_SIZE": ["0", "512k", "10m", "1G", "4096"],
    "MAX_LINE_SIZE": ["1k", "8k", "16k", "20000", "24k"],
    "REQUEST_TIMEOUT": ["1", "30", "86400"],
    "RELOAD_GRACE": ["0", "300", "86400"],
    "STOP_TIMEOUT": ["6", "10", "30", "86400"],
    "IMPORT_TIMEOUT": ["0", "120", "86400"],
    "SHARE_PORT": ["0", "1"],
    "DEBUG_HOST": ["0.0.0.0", "127.0.0.1", "::", "::1", "192.168.1.5"],
    "STICKY_CLIENTS": ["0", "1"],
    "ADAPTIVE_THREADS": ["0", "1"],
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
    "ALLOWED_HOSTS": ["", "example.com", ".example.com, *.api.example.org", "127.0.0.1,[::1]", "EXAMPLE.com",
                      ".".join(["a" * 63] * 3 + ["b" * 61]), "." + ".".join(["a" * 63] * 3 + ["b" * 61])],
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
    "MAX_LINE_SIZE": ["0", "1023", "25k", "64k", "1m", "16kb"],
    "REQUEST_TIMEOUT": ["0", "86401", "3s", ""],
    "RELOAD_GRACE": ["-1", "86401", "5m", ""],
    # Below 6 s nginx would have no time to drain (layout.stop_drain).
    "STOP_TIMEOUT": ["5", "0", "86401", "10s", ""],
    "IMPORT_TIMEOUT": ["-1", "86401", "2m", ""],
    "SHARE_PORT": ["yes", "2", ""],
    "DEBUG_HOST": ["localhost", "0.0.0.0:5000", "", "127.0.0.256"],
    "STICKY_CLIENTS": ["yes", "2", ""],
    "ADAPTIVE_THREADS": ["on", "2", ""],
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
    "ALLOWED_HOSTS": ["exa mple.com;", "*", "-bad.example", "example.com/path", "a..b", "a" * 64 + ".example",
                      ".".join(["a" * 63] * 3 + ["b" * 62])],
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


# --- rules across settings -------------------------------------------------

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
    current = resolved.record()
    assert resolved.values["UPLOAD_SPACE"] == "10m" and body.slots(current, body.limit(current, None))[0] == 1
    assert any("one upload at a time" in note for note in resolved.notes)


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


def test_metrics_port_is_not_port():
    with pytest.raises(settings.SettingError, match="METRICS_PORT=8080 is PORT as well: expected empty"):
        resolve({"PORT": "8080", "METRICS_PORT": "8080"})
    assert resolve({"PORT": "8080", "METRICS_PORT": "9100"}).values["METRICS_PORT"] == "9100"
