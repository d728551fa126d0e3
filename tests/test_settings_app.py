"""Which app a start serves, and tiangolo's layout, without a container
(lib/flaskbox/settings/): APP_MODULE found as `flask run` finds it, then
main; a folder with no app named for what it holds; flaskbox's sample
refused next to other code; tiangolo/uwsgi-nginx-flask's variables
honoured or refused naming ours, its uwsgi.ini naming the app, its
replacement nginx.conf refused."""

import pytest

from fake_host import FakeHost, GiB, resolve
from flaskbox import settings
from flaskbox.host import Mount
from flaskbox.start import render
from helpers import REPO


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


# --- tiangolo's variables and files ----------------------------------------

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
    render.render_production(resolved.record(), REPO)
    text = (tmp_path / "run" / "uwsgi.ini").read_text()
    assert "memory-report = true" in text and "processes = 8" in text
    user_part = text.split("without what names the app")[-1]
    for owned in ("module = main", "/tmp/uwsgi.sock", "plugins", "processes"):
        assert owned not in user_part
    assert [note for note in resolved.notes if "socket = /tmp/uwsgi.sock" in note]


def test_a_replacement_nginx_conf_is_refused(tmp_path):
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "nginx.conf").write_text("events {}\n")
    with pytest.raises(settings.SettingError, match="move your rules to /app/nginx.d/"):
        resolve(host=FakeHost(app_dir=tmp_path))
    assert resolve(mode="debug", host=FakeHost(app_dir=tmp_path)).values["APP_MODULE"] == "app"
