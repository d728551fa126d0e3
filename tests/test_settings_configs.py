"""The configs rendered from the resolved settings (lib/flaskbox/start/render.py
and the templates), without a container: only known placeholders, the stop
budget from one place, lists as include files, the user's uWSGI options
last, the sockets and upstreams of each worker class and of STICKY_CLIENTS,
nginx reaching the current generation through its link, TLS certificates
read at each handshake."""

import re

import pytest

from fake_host import rendered, resolve
from flaskbox import layout
from flaskbox.start import render
from helpers import REPO


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
    # uWSGI's own bound on a stopping pool never comes before the arbiter's,
    # which gives the workers' exit what STOP_TIMEOUT or RELOAD_GRACE leaves.
    assert "\nreload-mercy = 301\n" in files["uwsgi.ini"]
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


# --- worker classes and sockets --------------------------------------------

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
    assert "\nharakiri" not in sync_section and "\nthreads = 32\n" in sync_section
    assert "\noffload-threads = 1\n" in sync_section
    gevent_section = files["uwsgi.ini"].split("\n[gevent]\n")[1]
    assert "\nharakiri" not in gevent_section and "\ngevent = 2000\n" in gevent_section


def test_sticky_clients_keep_each_sync_client_on_one_process(tmp_path):
    _, files = rendered(tmp_path, {"STICKY_CLIENTS": "1"})
    sockets, upstream = files["uwsgi-sockets.ini"], files["upstream.conf"]
    # 2 CPUs: 2 processes, each with a socket of its own in the generation's folder.
    for number in (1, 2):
        assert f"%(flaskbox_generation)/uwsgi-{number}.sock\nmap-socket = {number - 1}:{number}\n" in sockets
    assert "hash $binary_remote_addr consistent;" in upstream
    assert upstream.count("/uwsgi/current/uwsgi-") == 2
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


def test_tls_certificates_are_read_at_each_handshake(tmp_path):
    from flaskbox.start import tls

    conf = tls.server_conf({"TLS_CERT": "/etc/tls/a.crt", "TLS_KEY": "/etc/tls/a.key", "TLS_PORT": "8443"},
                           http2_directive=False)
    assert "ssl_certificate $flaskbox_tls_cert;" in conf and "ssl_certificate_key $flaskbox_tls_key;" in conf
    assert "/etc/tls/a.crt" not in conf  # the checked copies are what nginx reads
    nginx = rendered(tmp_path)[1]["nginx.conf"]
    assert f"default {tmp_path}/run/tls/current/cert.pem;" in nginx


def test_an_nginx_that_keeps_upstream_connections_is_told_not_to(tmp_path):
    # uWSGI closes each connection after its answer; nginx 1.29.7 and later
    # would keep it and send the next request on it (test_upstream_hop.py).
    # Older ones refuse `keepalive 0`: the image's build marks which it has.
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("nginx.conf", "nginx-static.conf", "app.ini"):
        (conf / name).write_text((REPO / name).read_text())
    (conf / render.UPSTREAM_KEEPALIVE_MARK).touch()
    resolved = resolve({"RUNTIME_DIR": str(tmp_path / "run")})
    paths = render.render_production(resolved.record(), conf)
    upstream = next(path for path in paths if path.name == "upstream.conf").read_text()
    assert upstream.splitlines()[1] == "keepalive 0;"
    assert "keepalive" not in rendered(tmp_path / "old")[1]["upstream.conf"]
