"""The names settings go by and the names that are none of them
(lib/flaskbox/settings/names.py), and what resolve() makes of them: other
servers' names honoured or refused, misspellings warned about, uWSGI's own
options passed on, and a port something already listens on refused. No
container: a fake host stands in for the kernel's files."""

import pytest

from fake_host import FakeHost, resolve
from flaskbox import settings
from flaskbox.settings import names

# Options a uWSGI would list in `uwsgi --help`, including the ones flaskbox
# sets itself: anything left out of passed_to_uwsgi() is left out by rule.
UWSGI_OPTIONS = {"max-requests", "processes", "workers", "harakiri", "threads", "ini", "reloads",
                 "vassals-dir", "buffer-size"}


def uwsgi_options():
    return UWSGI_OPTIONS


def no_uwsgi():
    return None


def warned(env, mode="production", known=uwsgi_options):
    return names.warnings(env, mode, known)


@pytest.fixture
def host(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text("app = None\n")
    (app_dir / "src").mkdir()
    (app_dir / "src" / "app.py").write_text("def create_app():\n    return None\n")
    return FakeHost(app_dir=app_dir)


# --- names.warnings ----------------------------------------------------------

@pytest.mark.parametrize("name, meant", [("MAX_BODYSIZE", "MAX_BODY_SIZE"),
                                         ("REQUST_TIMEOUT", "REQUEST_TIMEOUT"),
                                         ("STATIC_ENABLE", "STATIC_ENABLED")])
def test_a_misspelled_setting_is_named_with_the_right_one(name, meant):
    assert warned({name: "1"}) == [f"warning: {name} is not a flaskbox setting: did you mean {meant}?"]


@pytest.mark.parametrize("name", ["PORTS", "DATABASE_URL", "SECRET_KEY", "HOSTNAME", "PATH", "HOME"])
def test_the_apps_own_names_are_left_alone(name):
    assert warned({name: "x"}) == []


def test_a_lower_case_setting_is_named_in_upper_case():
    assert warned({"port": "8080"}) == ["warning: port is not read: settings are upper case (PORT)"]


@pytest.mark.parametrize("name, ours", [("WEB_CONCURRENCY", "UWSGI_PROCESSES"), ("MODULE_NAME", "APP_MODULE"),
                                        ("MAX_WORKERS", "UWSGI_PROCESSES"), ("FLASK_RUN_PORT", "PORT")])
def test_another_servers_name_says_which_setting_flaskbox_reads(name, ours):
    [line] = warned({name: "4"})
    assert line.startswith(f"warning: {name} is not read here (")
    assert line.endswith(f"): flaskbox reads {ours}")


def test_an_nginx_name_that_is_no_setting_lists_the_ones_there_are():
    [line] = warned({"NGINX_WORKER_CONNECTION": "512"})
    assert "did you mean NGINX_WORKER_CONNECTIONS?" in line
    [line] = warned({"NGINX_HOST": "example.com"})
    assert line.startswith("warning: NGINX_HOST is not a flaskbox setting: nginx reads no variables")
    assert "NGINX_WORKER_PROCESSES" in line and "/app/nginx.d/*.conf" in line


def test_a_uwsgi_name_that_is_no_uwsgi_option_is_warned_with_the_nearest_option():
    assert warned({"UWSGI_MAX_REQUEST": "100", "UWSGI_MAX_REQUESTS": "100", "UWSGI_BUFFER_SIZE": "8192"}) == [
        "warning: UWSGI_MAX_REQUEST is neither a flaskbox setting nor an option of this uWSGI: left out "
        "(did you mean UWSGI_MAX_REQUESTS?)"]


def test_uwsgi_names_are_not_judged_without_a_uwsgi_to_ask():
    assert warned({"UWSGI_MAX_REQUEST": "100", "UWSGI_WHATEVER": "1"}, known=no_uwsgi) == []


def test_uwsgi_names_are_not_judged_in_debug_mode():
    assert warned({"UWSGI_MAX_REQUEST": "100"}, mode="debug") == []


def test_the_names_uwsgi_sets_for_its_children_are_not_warned_about():
    assert warned({"UWSGI_ORIGINAL_PROC_NAME": "x", "UWSGI_EMPEROR_FD": "3"}) == []


@pytest.mark.parametrize("name, value", [("FLASK_DEBUG", "1"), ("FLASK_DEBUG", "true"),
                                         ("FLASK_ENV", "development")])
def test_asking_flask_for_its_debugger_in_production_is_warned(name, value):
    [line] = warned({name: value})
    assert line.startswith(f"warning: {name}={value} is removed from the app's environment in production")
    assert "`-d debug`" in line


@pytest.mark.parametrize("env", [{"FLASK_ENV": "production"}, {"FLASK_DEBUG": "0"}, {"FLASK_DEBUG": ""}])
def test_flask_settings_that_ask_for_no_debugger_are_not_warned(env):
    assert warned(env) == []


def test_flask_debug_is_not_warned_in_debug_mode():
    assert warned({"FLASK_DEBUG": "1", "FLASK_ENV": "development"}, mode="debug") == []


def test_every_warning_line_starts_with_warning():
    env = {"MAX_BODYSIZE": "1", "port": "1", "WEB_CONCURRENCY": "2", "NGINX_HOST": "x",
           "UWSGI_NOPE_NOPE": "1", "FLASK_DEBUG": "1"}
    lines = warned(env)
    assert len(lines) == len(env)
    assert all(line.startswith("warning: ") for line in lines)


# --- names.passed_to_uwsgi ---------------------------------------------------

def test_a_uwsgi_option_is_passed_by_its_own_name():
    assert names.passed_to_uwsgi({"UWSGI_MAX_REQUESTS": "77", "PORT": "8080"}, uwsgi_options) == [
        ("max-requests", "77")]


def test_an_option_uwsgi_does_not_know_is_left_out():
    assert names.passed_to_uwsgi({"UWSGI_MAX_REQUEST": "77", "UWSGI_BUFFER_SIZE": "8192"}, uwsgi_options) == [
        ("buffer-size", "8192")]


def test_without_a_uwsgi_to_ask_every_option_is_passed():
    assert names.passed_to_uwsgi({"UWSGI_WHATEVER": "1"}, no_uwsgi) == [("whatever", "1")]


@pytest.mark.parametrize("name", ["UWSGI_PROCESSES", "UWSGI_THREADS", "UWSGI_INI", "UWSGI_WORKERS",
                                  "UWSGI_HARAKIRI", "UWSGI_RELOADS", "UWSGI_VASSALS_DIR", "UWSGI_EMPEROR_FD"])
def test_settings_their_aliases_and_uwsgis_own_names_are_never_passed(name):
    assert names.passed_to_uwsgi({name: "3"}, lambda: UWSGI_OPTIONS | {"emperor-fd"}) == []


# --- names.distance and names.closest ---------------------------------------

@pytest.mark.parametrize("a, b, edits", [("PORT", "PORT", 0), ("PORT", "PORTS", 1), ("PORT", "PROT", 1),
                                         ("REQUST", "REQUEST", 1), ("abc", "", 3), ("", "ab", 2),
                                         ("kitten", "sitting", 3)])
def test_distance_counts_edits_and_a_swap_as_one(a, b, edits):
    assert names.distance(a, b) == edits


def test_closest_finds_a_slip_and_leaves_short_or_far_names_alone():
    candidates = ["REQUEST_TIMEOUT", "RELOAD_GRACE", "PORT"]
    assert names.closest("REQEUST_TIMEOUT", candidates) == "REQUEST_TIMEOUT"
    assert names.closest("PROT", candidates) is None  # too short to guess at
    assert names.closest("RELOAD_GRACES", candidates) == "RELOAD_GRACE"
    assert names.closest("RELOAD", candidates) is None
    assert names.closest("REQUEST_TIMEOUT", candidates) is None  # itself is no slip


# --- through resolve(): other names honoured or refused ----------------------

def test_uwsgi_workers_is_taken_as_uwsgi_processes(host):
    assert resolve({"UWSGI_WORKERS": "3"}, host=host).values["UWSGI_PROCESSES"] == "3"


def test_uwsgi_workers_disagreeing_with_uwsgi_processes_is_refused(host):
    with pytest.raises(settings.SettingError) as refused:
        resolve({"UWSGI_WORKERS": "3", "UWSGI_PROCESSES": "4"}, host=host)
    assert "UWSGI_WORKERS='3' and UWSGI_PROCESSES='4' disagree" in str(refused.value)


def test_uwsgi_harakiri_is_taken_as_request_timeout(host):
    assert resolve({"UWSGI_HARAKIRI": "60"}, host=host).values["REQUEST_TIMEOUT"] == "60"


@pytest.mark.parametrize("name, value, instead", [("UWSGI_GEVENT", "100", "WORKER_CLASS=gevent"),
                                                  ("UWSGI_ASYNC", "10", "WORKER_CONNECTIONS")])
def test_uwsgi_options_that_size_the_pool_are_refused_naming_the_setting(host, name, value, instead):
    with pytest.raises(settings.SettingError) as refused:
        resolve({name: value}, host=host)
    message = str(refused.value)
    assert message.startswith(f"{name}='{value}' would size uWSGI's pool behind flaskbox's back")
    assert instead in message


def test_an_ini_that_sizes_the_pool_is_refused(host, tmp_path):
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app\ngevent = 100\n")
    with pytest.raises(settings.SettingError) as refused:
        resolve({"UWSGI_INI": str(ini)}, host=host)
    assert str(refused.value).startswith(f"{ini}: `gevent = 100` would size uWSGI's pool")
    assert "remove the line" in str(refused.value)
    # Debug mode runs no uWSGI: nothing to refuse there.
    assert resolve({"UWSGI_INI": str(ini), "UWSGI_ASYNC": "1"}, host=host, mode="debug").mode == "debug"


@pytest.mark.parametrize("value", ["false", "Off", "no", "0"])
def test_turning_off_the_fork_hooks_is_refused_naming_the_crash(host, tmp_path, value):
    # Without them an old ini's py-call-osafterfork aborts every worker at
    # fork on Python 3.13 and later (uWSGI #2710, test_uwsgi_reports.py).
    with pytest.raises(settings.SettingError) as refused:
        resolve({"UWSGI_PY_CALL_UWSGI_FORK_HOOKS": value}, host=host)
    message = str(refused.value)
    assert message.startswith(f"UWSGI_PY_CALL_UWSGI_FORK_HOOKS='{value}' turns off py-call-uwsgi-fork-hooks")
    assert "#2710" in message
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app\npy-call-uwsgi-fork-hooks = false\npy-call-osafterfork = true\n")
    with pytest.raises(settings.SettingError, match="remove the line"):
        resolve({"UWSGI_INI": str(ini)}, host=host)
    # On, or the old option alone, is no harm: the hooks make it a no-op.
    assert resolve({"UWSGI_PY_CALL_UWSGI_FORK_HOOKS": "true", "UWSGI_PY_CALL_OSAFTERFORK": "true"},
                   host=host).mode == "production"


@pytest.mark.parametrize("name, value, instead", [
    ("UWSGI_VIRTUALENV", "/srv/venv", "install the app's packages"), ("UWSGI_HOME", "/usr", "PYTHONPATH"),
    ("UWSGI_OPTIMIZE", "2", "PYTHONOPTIMIZE"), ("UWSGI_PY_PROGRAM_NAME", "app", "py-executable")])
def test_options_read_only_while_uwsgi_starts_python_are_refused(host, tmp_path, name, value, instead):
    """python3 is running before uWSGI reads an option (pyuwsgi): these
    would be dropped, so the start refuses them, saying what works."""
    with pytest.raises(settings.SettingError) as refused:
        resolve({name: value}, host=host)
    assert str(refused.value).startswith(f"{name}='{value}' would take no effect: ")
    assert instead in str(refused.value)
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app\nvirtualenv = /srv/venv\n")
    with pytest.raises(settings.SettingError, match="`virtualenv = /srv/venv` would take no effect.*remove"):
        resolve({"UWSGI_INI": str(ini)}, host=host)
    # The image's own venv is what runs anyway: no harm.
    assert resolve({"UWSGI_VIRTUALENV": "/opt/venv/"}, host=host).mode == "production"


def test_cheaper_mode_as_tiangolos_image_ran_it_is_honoured_and_said(host, tmp_path):
    # tiangolo's image ran uWSGI's cheaper mode: its apps run unchanged, and
    # the pool's line in the log says what runs (render's, from derived).
    # 4 processes: on 2 CPUs the default is 2, which cheaper=2 would equal.
    env = {"UWSGI_CHEAPER": "2", "UWSGI_PROCESSES": "4"}
    assert resolve(env, host=host).derived["UWSGI_CHEAPER"] == "2"
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app\ncheaper = 1\n")
    assert resolve({"UWSGI_INI": str(ini)}, host=host).derived["UWSGI_CHEAPER"] == "1"
    assert resolve({}, host=host).derived["UWSGI_CHEAPER"] == ""


def test_an_ini_workers_line_is_taken_as_uwsgi_processes_with_a_note(host, tmp_path):
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app\nworkers = 6\n")
    resolved = resolve({"UWSGI_INI": str(ini)}, host=host)
    assert resolved.values["UWSGI_PROCESSES"] == "6"
    assert f"{ini}: `workers = 6` taken as UWSGI_PROCESSES=6" in resolved.notes


def test_resolved_notes_carry_the_name_warnings(host):
    env = {"REQUST_TIMEOUT": "30", "WEB_CONCURRENCY": "4"}
    notes = resolve(env, host=host).notes
    assert [note for note in notes if note.startswith("warning: ")] == warned(env)
    assert "warning: REQUST_TIMEOUT is not a flaskbox setting: did you mean REQUEST_TIMEOUT?" in notes


def test_an_app_module_given_as_a_file_is_read_as_a_module(host):
    resolved = resolve({"APP_MODULE": "app.py"}, host=host)
    assert resolved.values["APP_MODULE"] == "app"
    assert "APP_MODULE='app.py' read as 'app'" in resolved.notes


def test_flask_app_given_as_a_path_with_a_factory_is_read_as_a_module(host):
    resolved = resolve({"FLASK_APP": "src/app.py:create_app()"}, host=host)
    assert resolved.values["APP_MODULE"] == "src.app:create_app()"


# --- through resolve(): a port something already listens on -----------------

def taken_host(host, port):
    return FakeHost(app_dir=host.app_dir, taken={port: [f"0.0.0.0:{port}"]})


def test_a_taken_port_is_refused_in_production(host):
    with pytest.raises(settings.SettingError) as refused:
        resolve({"PORT": "8080"}, host=taken_host(host, 8080))
    message = str(refused.value)
    assert "PORT=8080: something already listens on it here (0.0.0.0:8080)" in message
    assert "SHARE_PORT=1" in message


def test_share_port_shares_a_taken_port_with_reuseport(host):
    resolved = resolve({"PORT": "8080", "SHARE_PORT": "1"}, host=taken_host(host, 8080))
    assert resolved.values["PORT"] == "8080"
    assert resolved.derived["REUSEPORT"] == " reuseport"


def test_a_port_nobody_holds_is_not_shared(host):
    resolved = resolve({"PORT": "8080"}, host=taken_host(host, 9999))
    assert resolved.derived["REUSEPORT"] == ""


def test_a_taken_metrics_port_is_refused(host):
    with pytest.raises(settings.SettingError) as refused:
        resolve({"PORT": "8080", "METRICS_PORT": "9100"}, host=taken_host(host, 9100))
    assert "METRICS_PORT=9100: something already listens on it here (0.0.0.0:9100)" in str(refused.value)


def test_debug_mode_refuses_a_taken_port_even_with_share_port(host):
    with pytest.raises(settings.SettingError) as refused:
        resolve({"PORT": "8080", "SHARE_PORT": "1"}, host=taken_host(host, 8080), mode="debug")
    message = str(refused.value)
    assert "PORT=8080: something already listens on it here (0.0.0.0:8080)" in message
    assert "debug mode never shares its port" in message


def test_cheaper_at_or_above_the_processes_is_off_and_said(host):
    # uWSGI refuses to start with cheaper >= processes (exit 1): tiangolo's
    # UWSGI_CHEAPER=2 on a container of 1 or 2 CPUs (2 processes) runs a
    # fixed pool.
    resolved = resolve({"UWSGI_CHEAPER": "2", "UWSGI_PROCESSES": "2"}, host=host)
    assert resolved.derived["UWSGI_CHEAPER"] == ""
    assert any("cheaper mode asked for 2 process(es) of UWSGI_PROCESSES=2: off" in n for n in resolved.notes)
    assert resolve({"UWSGI_CHEAPER": "0"}, host=host).derived["UWSGI_CHEAPER"] == ""
    with pytest.raises(settings.SettingError, match="UWSGI_CHEAPER .* is 'two'"):
        resolve({"UWSGI_CHEAPER": "two"}, host=host)


def test_an_ini_pool_size_in_uwsgis_own_forms_is_read(host, tmp_path):
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app\nprocesses = $(MY_WORKERS)\nthreads = 8\n")
    resolved = resolve({"UWSGI_INI": str(ini), "MY_WORKERS": "3"}, host=host)
    assert (resolved.values["UWSGI_PROCESSES"], resolved.values["UWSGI_THREADS"]) == ("3", "8")
    ini.write_text("[uwsgi]\nmodule = app\nprocesses = %k\n")
    assert resolve({"UWSGI_INI": str(ini)}, host=host).values["UWSGI_PROCESSES"].isdigit()
    ini.write_text("[uwsgi]\nmodule = app\nprocesses = many\n")
    with pytest.raises(settings.SettingError, match=r"`processes = many` is taken as UWSGI_PROCESSES"):
        resolve({"UWSGI_INI": str(ini)}, host=host)
