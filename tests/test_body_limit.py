"""The body limit nginx applies, in process (start/body.py): MAX_BODY_SIZE
where the user set it, else the app's own Flask MAX_CONTENT_LENGTH where it
is larger than the image's default, else the default; the upload slots it
sizes, the files nginx reads, the start's line, the mistakes said; and the
arbiter installing them for each generation, a reload's new limit included
(tests/arbiter_fakes.py). The container test: test_app_body_limit.py."""

from __future__ import annotations

import flask
import pytest

from arbiter_fakes import FakeSystem, MasterScript, lines
from fake_host import resolve
from flaskbox.start import body
from flaskbox.userapp import importing

MIB = 1 << 20
# What nginx admits for the default MAX_BODY_SIZE=10m: a form's 64 KiB more.
DEFAULT_NGINX = 10 * MIB + 64 * 1024


def chosen(env: dict | None = None, own=None) -> body.Limit:
    return body.limit(resolve(env).record(), None if own is None else {"max_content_length": own})


@pytest.mark.parametrize("env, own, expected", [
    # Not loaded yet, or no limit of its own (Flask's default, None): the default.
    ({}, None, body.Limit(10 * MIB, DEFAULT_NGINX, "MAX_BODY_SIZE", None)),
    # Dify's 15 MB: nginx follows it up, exactly (Flask counts the whole body too).
    ({}, 15 * MIB, body.Limit(15 * MIB, 15 * MIB, "MAX_CONTENT_LENGTH", 15 * MIB)),
    # Below the default (and within its form allowance): the app's own 413 answers.
    ({}, MIB, body.Limit(10 * MIB, DEFAULT_NGINX, "MAX_BODY_SIZE", MIB)),
    ({}, DEFAULT_NGINX, body.Limit(10 * MIB, DEFAULT_NGINX, "MAX_BODY_SIZE", DEFAULT_NGINX)),
    ({}, DEFAULT_NGINX + 1, body.Limit(DEFAULT_NGINX + 1, DEFAULT_NGINX + 1, "MAX_CONTENT_LENGTH",
                                       DEFAULT_NGINX + 1)),
    # 0 is Flask's "no body at all", never nginx's "no limit".
    ({}, 0, body.Limit(10 * MIB, DEFAULT_NGINX, "MAX_BODY_SIZE", 0)),
    # MAX_BODY_SIZE set: it wins, above or below the app's, and 0 is no limit.
    ({"MAX_BODY_SIZE": "20m"}, 15 * MIB,
     body.Limit(20 * MIB, 20 * MIB + 64 * 1024, "MAX_BODY_SIZE", 15 * MIB)),
    ({"MAX_BODY_SIZE": "1m"}, 15 * MIB, body.Limit(MIB, MIB + 64 * 1024, "MAX_BODY_SIZE", 15 * MIB)),
    ({"MAX_BODY_SIZE": "10m"}, 15 * MIB, body.Limit(10 * MIB, DEFAULT_NGINX, "MAX_BODY_SIZE", 15 * MIB)),
    ({"NGINX_MAX_UPLOAD": "10m"}, 15 * MIB, body.Limit(10 * MIB, DEFAULT_NGINX, "MAX_BODY_SIZE", 15 * MIB)),
    ({"MAX_BODY_SIZE": "0"}, 15 * MIB, body.Limit(0, 0, "MAX_BODY_SIZE", 15 * MIB)),
])
def test_the_limit_and_where_it_comes_from(env, own, expected):
    assert chosen(env, own) == expected


@pytest.mark.parametrize("value, read", [
    (15 * MIB, 15 * MIB), (16e6, 16_000_000), (0, 0), (None, None),
    # Nothing Flask could compare a length with: not followed (app_mistakes says so).
    ("15m", None), (True, None), (-1, None), (float("inf"), None)])
def test_the_apps_max_content_length_as_flask_reads_it(value, read):
    app = flask.Flask("limits")
    app.config["MAX_CONTENT_LENGTH"] = value
    assert importing.max_content_length(app) == read
    assert body.app_limit({"max_content_length": read}) == read


def test_the_upload_slots_follow_the_limit():
    space = {"UPLOAD_SPACE": "128m"}
    record = resolve(space).record()
    assert body.slots(record, chosen(space)) == (12, 3)  # 128m / 10m
    assert body.slots(record, chosen(space, 15 * MIB)) == (8, 2)  # 128m / 15 MiB
    # An app limit above UPLOAD_SPACE: one at a time, and the start says so.
    assert body.slots(record, chosen(space, 200 * MIB)) == (1, 1)
    [line] = body.mistakes(record, 200 * MIB)
    assert line.startswith(f"the app's MAX_CONTENT_LENGTH ({200 * MIB} bytes) is above UPLOAD_SPACE (128m)")
    assert body.slots(record, chosen({"MAX_BODY_SIZE": "0"}, 15 * MIB)) == (0, 0)


def test_the_files_nginx_reads():
    record = resolve({"UPLOAD_SPACE": "128m"}).record()
    files = {path.name: text for path, text in body.files(record, chosen({}, 15 * MIB)).items()}
    assert f"client_max_body_size {15 * MIB};\n" in files["body-limit.conf"]
    assert "    default MAX_CONTENT_LENGTH;\n" in files["body-limit.conf"]
    uploads = files["upload-limits.conf"]
    assert "limit_conn flaskbox_uploads 8;\nlimit_conn flaskbox_upload_clients 2;\n" in uploads
    files = {path.name: text for path, text in body.files(record, chosen({})).items()}
    assert f"client_max_body_size {DEFAULT_NGINX};\n" in files["body-limit.conf"]
    assert "    default MAX_BODY_SIZE;\n" in files["body-limit.conf"]
    unlimited = resolve({"MAX_BODY_SIZE": "0"}).record()
    files = {path.name: text for path, text in body.files(unlimited, body.limit(unlimited, None)).items()}
    assert "client_max_body_size 0;\n" in files["body-limit.conf"]
    assert "limit_conn" not in files["upload-limits.conf"]


@pytest.mark.parametrize("env, own, line", [
    ({}, None, "bodies up to MAX_BODY_SIZE (10m, the image's default; larger: 413, logged with "
               "limit=MAX_BODY_SIZE); 12 uploads at once at most: UPLOAD_SPACE (128m, as set) over the "
               "limit"),
    ({}, 15 * MIB, f"bodies up to the app's MAX_CONTENT_LENGTH ({15 * MIB} bytes; larger: 413, logged "
                   "with limit=MAX_CONTENT_LENGTH); 8 uploads at once at most: UPLOAD_SPACE (128m, as set) "
                   "over the limit"),
    ({}, MIB, "bodies up to MAX_BODY_SIZE (10m, the image's default; larger: 413, logged with "
              f"limit=MAX_BODY_SIZE), the app's own 413 above its MAX_CONTENT_LENGTH ({MIB} bytes); "
              "12 uploads at once at most: UPLOAD_SPACE (128m, as set) over the limit"),
    ({"MAX_BODY_SIZE": "20m"}, 15 * MIB,
     "bodies up to MAX_BODY_SIZE (20m, as set; larger: 413, logged with limit=MAX_BODY_SIZE), "
     f"the app's own 413 above its MAX_CONTENT_LENGTH ({15 * MIB} bytes); 6 uploads at once at most: "
     "UPLOAD_SPACE (128m, as set) over the limit"),
    ({"MAX_BODY_SIZE": "0"}, 15 * MIB, "bodies unbounded (MAX_BODY_SIZE=0), and so are uploads at once"),
])
def test_the_starts_line_says_the_limit_and_its_source(env, own, line):
    env = {"UPLOAD_SPACE": "128m", **env}
    assert body.said(resolve(env).record(), chosen(env, own)) == line


def test_uploads_at_once_are_said_only_where_they_limit_anything():
    # Half of a host's large disk held 12900 bodies of 10m: more than
    # nginx's body slots in all, so no limit a user could act on.
    env = {"UPLOAD_SPACE": "1000g"}
    assert body.said(resolve(env).record(), chosen(env, None)) == (
        "bodies up to MAX_BODY_SIZE (10m, the image's default; larger: 413, logged with limit=MAX_BODY_SIZE)")


def test_an_app_limit_above_a_max_body_size_set_is_a_mistake_and_never_the_default():
    assert body.mistakes(resolve().record(), 15 * MIB) == []
    [line] = body.mistakes(resolve({"MAX_BODY_SIZE": "1m"}).record(), 15 * MIB)
    assert line == (f"the app's MAX_CONTENT_LENGTH ({15 * MIB} bytes) is above MAX_BODY_SIZE (1m, as set): "
                    "nginx answers 413 to the bodies between them before the app sees them; raise "
                    "MAX_BODY_SIZE to 15m, or unset it to let the app's limit decide")
    assert body.mistakes(resolve({"MAX_BODY_SIZE": "0"}).record(), 15 * MIB) == []


# --- the arbiter: each generation's limit installed -------------------------------------------------

def app_saying(limit) -> dict:
    return {"flask": True, "static_folder": "/app/static", "static_url_path": "/static",
            "max_content_length": limit}


def test_the_start_installs_the_apps_limit_and_says_it(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(app=app_saying(15 * MIB))
    arbiter = system.arbiter({"UPLOAD_SPACE": "128m"})
    system.run_until(lambda: arbiter.serving)
    assert f"client_max_body_size {15 * MIB};" in system.runtime.body_conf.read_text()
    assert "limit_conn flaskbox_uploads 8;" in system.runtime.upload_conf.read_text()
    assert (f"flaskbox: bodies up to the app's MAX_CONTENT_LENGTH ({15 * MIB} bytes; larger: 413, logged "
            "with limit=MAX_CONTENT_LENGTH); 8 uploads at once at most: UPLOAD_SPACE (128m, as set) over "
            "the limit") in lines(capsys)


def test_a_reload_that_changes_the_limit_installs_it_and_nginx_reloads(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(app=app_saying(15 * MIB))
    arbiter = system.arbiter({"UPLOAD_SPACE": "128m"})
    system.run_until(lambda: arbiter.serving)
    lines(capsys)
    system.masters[2] = MasterScript(app=app_saying(None))
    system.send(system.clock, 1)  # SIGHUP
    system.run_until(lambda: system.nginx().reloads == 1)
    assert f"client_max_body_size {DEFAULT_NGINX};" in system.runtime.body_conf.read_text()
    out = lines(capsys)
    assert ("flaskbox: SIGHUP: bodies up to MAX_BODY_SIZE (10m, the image's default; larger: 413, logged "
            "with limit=MAX_BODY_SIZE); 12 uploads at once at most: UPLOAD_SPACE (128m, as set) over the "
            "limit") in out
    assert "flaskbox: SIGHUP: nginx reloads its configuration, which changed" in out


def test_a_reload_whose_limit_nginx_rejects_keeps_the_previous_one(tmp_path, capsys):
    system = FakeSystem(tmp_path)
    system.masters[1] = MasterScript(app=app_saying(15 * MIB))
    arbiter = system.arbiter()
    system.run_until(lambda: arbiter.serving)
    before = system.runtime.body_conf.read_text()
    system.masters[2] = MasterScript(app=app_saying(30 * MIB))
    system.nginx_test_statuses = [1]
    system.send(system.clock, 1)
    system.run_until(lambda: system.delivered)
    system.run_until(lambda: not arbiter.reload.under_way)
    assert system.runtime.body_conf.read_text() == before and arbiter.current.number == 1
    out = lines(capsys)
    rejected = "flaskbox: error: SIGHUP: nginx rejected its configuration"
    assert any(line.startswith(rejected) for line in out)
    assert not any(line.startswith("flaskbox: SIGHUP: bodies up to") for line in out)
