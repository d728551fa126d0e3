"""Extra configuration: /app/nginx.d rules, UWSGI_INI, and `nginx -t` at start."""

import uuid
from pathlib import Path

from helpers import share_with_container


def add_nginx_rule(app: Path, relative: str, text: str) -> None:
    path = app / "nginx.d" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    share_with_container(app / "nginx.d")


def test_nginx_d_rules_are_included_at_server_and_http_level(containers, app_copy):
    token = uuid.uuid4().hex
    add_nginx_rule(app_copy, "extra.conf",
                   "location = /from-nginx-d {\n"
                   "    default_type text/plain;\n"
                   f"    return 200 \"nginx.d {token}\\n\";\n"
                   "}\n"
                   "add_header X-Probe $probe_seen always;\n")
    add_nginx_rule(app_copy, "http/probe.conf",
                   "map $http_x_probe $probe_seen {\n    default none;\n    ~.+ seen;\n}\n")
    c = containers.run(docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    resp = c.request("/from-nginx-d", headers={"X-Probe": "1"})
    assert resp.status == 200 and resp.text == f"nginx.d {token}\n"
    assert resp.headers["x-probe"] == "seen"
    # The image's own routes still work alongside.
    assert c.request("/api/hello").status == 200


def test_bad_nginx_rule_stops_the_container_with_nginxs_message(containers, app_copy):
    add_nginx_rule(app_copy, "broken.conf", "this_is_not_a_directive on;\n")
    c = containers.run(docker_args=("-v", f"{app_copy}:/app"))
    assert c.wait_exit(timeout=30) == 2
    logs = c.logs()
    assert 'unknown directive "this_is_not_a_directive"' in logs
    assert "/app/nginx.d/broken.conf" in logs
    assert "Starting uWSGI" not in logs


def test_uwsgi_ini_is_merged_with_the_images_own(containers, fixture_image, tmp_path):
    token = uuid.uuid4().hex
    ini = tmp_path / "extra.ini"
    ini.write_text(f"[uwsgi]\nenv = INI_TOKEN={token}\n")
    share_with_container(tmp_path)
    c = containers.run(image=fixture_image["image"], env={"UWSGI_INI": "/etc/extra.ini"},
                       docker_args=("-v", f"{ini}:/etc/extra.ini:ro"))
    resp = c.wait_http("/env/INI_TOKEN")
    assert resp.json() == {"value": token}
    # Merged, not replaced: the image's own health route (app.ini) still answers.
    assert c.request("/-/healthy").status == 200


def test_missing_uwsgi_ini_is_a_setting_error(containers):
    result = containers.run_once(env={"UWSGI_INI": "/nowhere/extra.ini"})
    assert result.returncode == 2
    assert "UWSGI_INI='/nowhere/extra.ini'" in result.stderr


def test_uwsgi_variables_win_over_app_ini(containers):
    # app.ini sets listen = 1024; UWSGI_LISTEN must override it.
    c = containers.run(env={"UWSGI_LISTEN": "100"})
    c.wait_http("/")
    assert "your server socket listen backlog is limited to 100 connections" in c.logs()


def test_on_off_uwsgi_variables_work(containers):
    # An on/off option with a value, as uWSGI itself reads it from the
    # environment: app.ini's disable-logging turned back off.
    c = containers.run(env={"UWSGI_DISABLE_LOGGING": "false"})
    c.wait_http("/")
    path = f"/api/hello?uwsgi-log={uuid.uuid4().hex}"
    c.request(path)
    c.wait_until(lambda: f"GET {path} =>" in c.logs(), "uWSGI's own request log line", timeout=5)
