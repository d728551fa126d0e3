"""An app's own pins of gevent's packages win over the image's: tests/apps/
board pins gevent 25.5.1 (25.8.2 on Python 3.14) and greenlet 3.2.3, and WORKER_CLASS=gevent imports
those, not the image's 26.9.0, saying so once and truthfully. A mix that
cannot work (an old greenlet under the image's gevent) is refused, naming
both. Under the sync workers, an app made for gevent gets one line of advice
naming WORKER_CLASS."""

import uuid

import pytest

from flaskbox.userapp import packages
from helpers import build_image, docker


def test_the_apps_gevent_pins_win(containers, app_images, app_pins):
    pinned = app_pins("board")
    c = containers.run(image=app_images("board"), env={"WORKER_CLASS": "gevent"})
    running = c.wait_http("/whoami").json()
    assert (running["gevent"], running["greenlet"]) == (pinned["gevent"], "3.2.3"), running
    logs = c.logs()
    said = f"WORKER_CLASS=gevent runs your image's gevent {pinned['gevent']} (not the image's 26.9.0)"
    assert logs.count(said) == 1, logs
    assert "greenlet 3.2.3 (not the image's 3.5.6)" in logs
    # The venv's replaced packages, once per start (not once per settings pass).
    assert logs.count("your image replaced packages this image was tested with") == 1, logs
    assert f"Flask 3.1.3 -> {pinned['Flask']}" in logs
    # The image's own gevent is not named as replaced: it is not.
    assert f"gevent 26.9.0 -> {pinned['gevent']}" not in logs
    assert "looks made for gevent" not in logs


def test_sync_workers_advise_gevent_once(containers, app_images):
    c = containers.run(image=app_images("board"))
    assert c.wait_http("/whoami").json()["gevent"] is None
    logs = c.logs()
    # Its own gunicorn.conf.py, not the gevent it installs, says so.
    assert logs.count('your app looks made for gevent workers (gunicorn.conf.py asks for gevent '
                      '(worker_class = "gevent)) and WORKER_CLASS is sync') == 1, logs
    assert "set WORKER_CLASS=gevent" in logs
    # Not a note about gevent's versions: the sync workers never import the image's.
    assert "not the image's 26.9.0" not in logs


@pytest.fixture(scope="module")
def old_greenlet(runtime_image, tmp_path_factory):
    """An app that pins greenlet (as SQLAlchemy's users do) older than the
    image's gevent needs, and no gevent of its own: 3.1.1, the oldest with
    wheels for Python 3.11 to 3.13, since the runtime image has no
    compiler. No greenlet older than the image's gevent needs has wheels for
    Python 3.14: there, its metadata alone stands in (what the start reads)."""
    context = tmp_path_factory.mktemp("old-greenlet")
    (context / "app.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    stand_in = ('site="$(python3 -c \'import sysconfig; print(sysconfig.get_path("purelib"))\')"; '
                'mkdir "$site/greenlet-3.1.1.dist-info"; '
                'printf "Metadata-Version: 2.1\\nName: greenlet\\nVersion: 3.1.1\\n" '
                '> "$site/greenlet-3.1.1.dist-info/METADATA"')
    (context / "Dockerfile").write_text(
        f"FROM {runtime_image}\nUSER 0\n"
        "RUN if python3 -c 'import sys; sys.exit(sys.version_info < (3, 14))'; then pip uninstall -y greenlet"
        f" >/dev/null 2>&1; {stand_in}; else pip install --no-cache-dir greenlet==3.1.1; fi\n"
        "USER 10001:0\nCOPY app.py /app/\n")
    tag = f"flaskbox-old-greenlet:{uuid.uuid4().hex[:12]}"
    build_image(context, tag)
    yield tag
    docker("rmi", "-f", tag, check=False)


def test_a_mix_that_cannot_work_is_refused(containers, old_greenlet):
    result = containers.run_once(image=old_greenlet, env={"WORKER_CLASS": "gevent"})
    assert result.returncode == 2, result.stderr
    assert ("WORKER_CLASS=gevent: the image's gevent 26.9.0 needs greenlet>=3.2.2, and the greenlet it "
            "would import is 3.1.1 (yours, in /opt/venv)") in result.stderr
    # The sync workers never import gevent: the same image serves.
    c = containers.run(image=old_greenlet)
    c.wait_http("/", status=404)


# --- the logic, without a container -------------------------------------------

@pytest.mark.parametrize("version, specifier, ok", [
    ("3.2.3", ">=3.2.2", True), ("3.0.3", ">=3.2.2", False), ("3.10.0", ">=3.9", True),
    ("2.0", "<2.0,>=1.16.0", False), ("1.16.0", "<2.0,>=1.16.0", True), ("3.0.0rc1", "", True),
    ("1.0", "~=1.0", True),  # not judged: never refused on a guess
])
def test_satisfies(version, specifier, ok):
    assert packages.satisfies(version, specifier) is ok


def test_monkey_patching_in_the_wsgi_file_is_a_sign(tmp_path):
    (tmp_path / "wsgi.py").write_text("from gevent import monkey\nmonkey.patch_all()\nfrom app import app\n")
    advice = packages.gevent_advice(tmp_path)
    assert advice and "wsgi.py calls monkey.patch_all()" in advice[0] and "WORKER_CLASS=gevent" in advice[0]
    (tmp_path / "wsgi.py").write_text("from app import app\n")
    assert packages.gevent_advice(tmp_path) == []


def test_a_server_configured_for_gevent_is_a_sign_and_gevent_installed_is_none(tmp_path):
    # Redash pins gevent and serves with gunicorn's sync workers: nothing to say.
    (tmp_path / "wsgi.py").write_text("from redash.app import create_app\napp = create_app()\n")
    (tmp_path / "docker-entrypoint.sh").write_text("exec gunicorn -b 0.0.0.0:5000 -w4 redash.wsgi:app\n")
    assert packages.gevent_advice(tmp_path) == []
    (tmp_path / "gunicorn.conf.py").write_text('workers = 4\nworker_class = "gevent"\n')
    advice = packages.gevent_advice(tmp_path)
    assert advice and "gunicorn.conf.py asks for gevent (worker_class = \"gevent)" in advice[0], advice
    (tmp_path / "gunicorn.conf.py").unlink()
    (tmp_path / "Procfile").write_text("web: gunicorn -k gevent -w 1 app:app\n")
    assert "Procfile asks for gevent (-k gevent)" in packages.gevent_advice(tmp_path)[0]


def test_an_import_failing_inside_a_package_pinned_older_names_it(tmp_path):
    # Werkzeug 2.2's ast.Str on Python 3.14: the traceback ends inside the
    # package the app pinned older than the image's tested one.
    tested = tmp_path / "tested.txt"
    tested.write_text("Werkzeug==99.0\nFlask==0.1\n")
    code = compile("raise AttributeError(\"module 'ast' has no attribute 'Str'\")",
                   "/opt/venv/lib/python3.14/site-packages/werkzeug/routing/rules.py", "exec")
    with pytest.raises(AttributeError) as failed:
        exec(code)
    hint = packages.older_pin_hint(failed.value, tested)
    assert hint.startswith("the error comes from inside Werkzeug ") and "below the 99.0 tested here" in hint
    assert "may not run on Python 3." in hint
    # A package at or above the tested version, or the app's own code: nothing to say.
    assert packages.older_pin_hint(failed.value, tmp_path / "none.txt") is None
    own = compile("raise ValueError()", "/app/app.py", "exec")
    with pytest.raises(ValueError) as failed:
        exec(own)
    assert packages.older_pin_hint(failed.value, tested) is None
