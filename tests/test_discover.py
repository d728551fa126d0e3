"""Finding the app (lib/flaskbox/userapp/discover.py) without a container: every
form of APP_MODULE, Flask's rules for what a module holds, and a clear
error, saying what to write instead, for whatever is not a WSGI app.
test_your_app.py serves real app layouts built FROM the image."""

import uuid

import pytest

from flaskbox.userapp import discover

FLASK_APP = "from flask import Flask\napp = Flask(__name__)\n"
FACTORY = ("from flask import Flask\n"
           "def create_app(name='default', debug=False):\n"
           "    app = Flask(__name__)\n    app.config['NAME'] = name\n    return app\n")
WSGI = "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'x']\n"


def module(tmp_path, source: str, package: bool = False) -> str:
    """A uniquely named module (or package) holding `source`; its name."""
    name = f"m_{uuid.uuid4().hex[:10]}"
    if package:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(source)
    else:
        (tmp_path / f"{name}.py").write_text(source)
    return name


def test_module_with_an_app(tmp_path):
    found = discover.load(module(tmp_path, FLASK_APP), tmp_path)
    assert found.flask and found.static_url_path == "/static"
    assert found.static_folder == str(tmp_path / "static")


@pytest.mark.parametrize("source", [FLASK_APP, FACTORY])
def test_flask_2_0s_discovery_is_called_its_own_way(tmp_path, monkeypatch, source):
    # Flask 2.0's find_best_app(script_info, module): an app pinned to it is
    # found as with today's Flask, not refused with a TypeError.
    from flask import cli

    current = cli.find_best_app

    def find_best_app(script_info, module):
        assert script_info is None
        return current(module)

    monkeypatch.setattr(cli, "find_best_app", find_best_app)
    assert discover.load(module(tmp_path, source, package=True), tmp_path).flask

def test_package_with_a_factory_is_found_like_flask_run(tmp_path):
    name = module(tmp_path, FACTORY, package=True)
    found = discover.load(name, tmp_path)
    assert found.flask and found.app.config["NAME"] == "default"
    # A package's static folder is inside it.
    assert found.static_folder == str(tmp_path / name / "static")


@pytest.mark.parametrize("call, expected", [("create_app()", "default"), ("create_app('prod')", "prod"),
                                            ("create_app(name='x', debug=True)", "x")])
def test_factory_called_with_literal_arguments(tmp_path, call, expected):
    name = module(tmp_path, FACTORY)
    assert discover.load(f"{name}:{call}", tmp_path).app.config["NAME"] == expected


def test_factory_named_without_a_call_is_refused_saying_what_to_write(tmp_path):
    name = module(tmp_path, FACTORY)
    with pytest.raises(discover.AppError) as error:
        discover.load(f"{name}:create_app", tmp_path)
    assert f"an app factory, not an app. Call it: APP_MODULE='{name}:create_app()'" in str(error.value)


def test_factory_with_wrong_arguments(tmp_path):
    name = module(tmp_path, FACTORY)
    with pytest.raises(discover.AppError, match="create_app does not take these arguments"):
        discover.load(f"{name}:create_app(1, 2, 3)", tmp_path)


@pytest.mark.parametrize("value", ["application", None])
def test_any_wsgi_callable(tmp_path, value):
    name = module(tmp_path, WSGI)
    found = discover.load(f"{name}:{value}" if value else name, tmp_path)
    assert not found.flask and found.app.__name__ == "application"


@pytest.mark.parametrize("source, attribute, message", [
    ("x = 42\n", "x", "is a int, not a WSGI app"),
    ("class App:\n    pass\n", "App", "is a class, not an app"),
    ("async def app(scope, receive, send):\n    pass\n", "app", "is an ASGI app"),
    ("class A:\n    async def __call__(self, scope, receive, send):\n        pass\napp = A()\n", "app",
     "is an ASGI app"),
    ("x = 1\n", "missing", "has no attribute 'missing'"),
])
def test_what_is_not_an_app_is_named(tmp_path, source, attribute, message):
    with pytest.raises(discover.AppError, match=message):
        discover.load(f"{module(tmp_path, source)}:{attribute}", tmp_path)


def test_module_with_no_app(tmp_path):
    name = module(tmp_path, "x = 1\n")
    with pytest.raises(discover.AppError, match=f"module {name} has no app"):
        discover.load(name, tmp_path)


def test_import_errors_propagate_with_their_traceback(tmp_path):
    name = module(tmp_path, "def broken(:\n")
    with pytest.raises(SyntaxError):
        discover.load(name, tmp_path)


def test_a_flask_app_without_a_static_folder(tmp_path):
    source = "from flask import Flask\napp = Flask(__name__, static_folder=None)\n"
    found = discover.load(module(tmp_path, source), tmp_path)
    assert found.flask and found.static_folder is None


def test_uwsgi_ini_forms(tmp_path):
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = app.main\ncallable = app\n")
    assert discover.uwsgi_ini_app(ini) == "app.main:app"
    ini.write_text("[other]\nmodule = nope\n[uwsgi]\nwsgi-file = /app/main.py\n")
    assert discover.uwsgi_ini_app(ini) == "main"
    ini.write_text("[uwsgi]\nmodule = main:application\n")
    assert discover.uwsgi_ini_app(ini) == "main:application"
    ini.write_text("[uwsgi]\nprocesses = 4\n")
    assert discover.uwsgi_ini_app(ini) is None


def test_a_missing_module_is_told_apart_from_a_missing_package(tmp_path):
    def error_of(source: str, value: str) -> ModuleNotFoundError:
        with pytest.raises(ModuleNotFoundError) as caught:
            discover.load(value if source is None else module(tmp_path, source) + value, tmp_path)
        return caught.value

    message, bad_setting = discover.missing_module(error_of(None, "no_such_module_here:app"),
                                                   "no_such_module_here:app", tmp_path)
    assert bad_setting and "there is no module no_such_module_here in" in message
    missing = error_of("import no_such_package_xyz\n", "")
    message, bad_setting = discover.missing_module(missing, "app", tmp_path)
    assert not bad_setting and ("add the package that provides it (on PyPI usually no-such-package-xyz) to "
                                "your requirements.txt and rebuild") in message
    # Asked for (in pip's spelling) but not installed: the build skipped it.
    (tmp_path / "requirements.txt").write_text("\ufeffNo-Such_Package.xyz >= 1  # the BOM of Notepad\n")
    message, bad_setting = discover.missing_module(missing, "app", tmp_path)
    assert not bad_setting and f"{tmp_path / 'requirements.txt'} asks for it" in message
    assert "the image was built without installing it" in message and "INSTALL_ON_START=1" in message


@pytest.mark.parametrize("module, wanted", [
    ("flask_sqlalchemy", "add the package flask-sqlalchemy to"),
    ("cv2", "add the package opencv-python-headless to"),
    ("PIL.Image", "add the package Pillow to"),
    ("google.protobuf", "add the package protobuf to"),
    ("yaml", "add the package PyYAML to"),
    ("requests", "add the package that provides it (on PyPI usually requests) to"),
])
def test_a_missing_package_is_named_as_pip_knows_it(tmp_path, module, wanted):
    from flaskbox.userapp.distributions import install_hint

    assert wanted in install_hint(module, tmp_path / "requirements.txt")


def test_with_install_on_start_a_missing_package_needs_a_restart_not_a_build(tmp_path):
    # INSTALL_ON_START=1 installs requirements.txt as the container starts:
    # a line added since, or a package not yet listed, waits for a restart.
    from flaskbox.userapp.distributions import install_hint

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("humanize==4.11.0\n")
    message = install_hint("humanize", requirements, install_on_start=True)
    assert ("though " f"{requirements} asks for it ('humanize==4.11.0'): INSTALL_ON_START=1 installs "
            "requirements.txt only as the container starts") in message
    assert "restart the container (docker restart, or docker compose restart)" in message
    assert "Dockerfile" not in message and "built" not in message, message
    message = install_hint("yaml", requirements, install_on_start=True)
    assert f"add the package PyYAML to {requirements} and restart the container" in message
    assert "rebuild" not in message, message
    # Off (production, or debug mode without it): the build is what lacks it.
    assert "Your Dockerfile needs `RUN pip install" in install_hint("humanize", requirements)


def test_missing_requirements_are_only_packages_really_not_installed(tmp_path):
    from flaskbox.userapp.distributions import missing

    gevent_site = tmp_path / "gevent"
    (gevent_site / "fake_gevent-1.0.dist-info").mkdir(parents=True)
    (gevent_site / "fake_gevent-1.0.dist-info" / "METADATA").write_text("Name: fake-gevent\nVersion: 1.0\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join([
        "# pinned",
        "PyTest>=7  # installed, in another spelling",
        "no_such_package_xyz==1.0  # missing",
        "Other-Missing[extra] @ https://example.com/other.zip",
        "-r more.txt", "--index-url https://example.com/simple", "-e .", "./local_dir", "local_dir/",
        "https://example.com/pkg-1.0-py3-none-any.whl", "pkg_file-1.0-py3-none-any.whl",
        "windows_only_xyz==1.0; sys_platform == 'win32'",
        "fake_gevent==1.0",
    ]) + "\n")
    assert missing(requirements, gevent_site) == [
        ("no_such_package_xyz", "no_such_package_xyz==1.0  # missing"),
        ("Other-Missing", "Other-Missing[extra] @ https://example.com/other.zip"),
    ]
    assert missing(tmp_path / "none.txt", gevent_site) == []


def test_packages_on_pythonpath_are_installed_for_the_app_too(tmp_path, monkeypatch):
    # `pip install --target /deps` with ENV PYTHONPATH=/deps: the app finds
    # them, so the hook's hint (run under python3 -I) must find them too.
    from flaskbox.userapp.distributions import missing

    deps = tmp_path / "deps"
    (deps / "target_only_xyz-2.0.dist-info").mkdir(parents=True)
    (deps / "target_only_xyz-2.0.dist-info" / "METADATA").write_text("Name: target-only-xyz\nVersion: 2.0\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("target_only_xyz==2.0\n")
    gevent_site = tmp_path / "gevent"
    assert missing(requirements, gevent_site) == [("target_only_xyz", "target_only_xyz==2.0")]
    monkeypatch.setenv("PYTHONPATH", f"/app:{deps}")
    assert missing(requirements, gevent_site) == []


def test_a_failed_hook_hears_of_missing_packages_only_when_one_is(tmp_path):
    from flaskbox.userapp.distributions import hook_hint

    requirements = tmp_path / "requirements.txt"
    assert hook_hint(requirements) is None
    requirements.write_text("pytest\n")
    assert hook_hint(requirements) is None
    requirements.write_text("pytest\nFlask-SQLAlchemy==3.1.1\n")
    message = hook_hint(requirements)
    assert message.startswith(f"{requirements} asks for Flask-SQLAlchemy ('Flask-SQLAlchemy==3.1.1'), which "
                              "is not installed in the image (a hook that imports your app"), message
    assert "the image was built without installing it. Your Dockerfile needs `RUN pip install" in message
    requirements.write_text("a_missing_xyz\nb_missing_xyz==2\n")
    message = hook_hint(requirements, install_on_start=True)
    assert ("a_missing_xyz ('a_missing_xyz'), b_missing_xyz ('b_missing_xyz==2'), which are not "
            "installed") in message
    assert "this start did not install them: restart the container" in message, message
