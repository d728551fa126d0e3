"""nginx.conf and app.ini, filled in from the settings, into RUNTIME_DIR.

Templates are the real config files with upper-case ${...} placeholders; only
names the settings table or derived() knows are replaced, so nginx's own
$variables (and ${lower_case} ones) pass through, and a misspelt placeholder
fails the start instead of reaching nginx. Lists (trusted proxies, allowed
hosts) become small include files, generated from the data they hold.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from . import discover
from .settings import GEVENT, Resolved, uwsgi_options, words

CONF_DIR = Path("/etc/flaskbox")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# A path nginx can take as it is: no spaces, quotes or `$` (a variable there).
PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~+@-]+)+")

# Options of a user's uWSGI ini (UWSGI_INI, or tiangolo's /app/uwsgi.ini)
# that name the app: they become APP_MODULE (discover.py) instead.
APP_OPTIONS = {"module", "callable", "wsgi", "wsgi-file"}
# Options flaskbox owns: the socket nginx talks to, the process tree, the
# user, where the app lives, logging. Left out, each with a log line.
OWNED_OPTIONS = {"socket", "uwsgi-socket", "http-socket", "http11-socket", "http", "https", "shared-socket",
                 "chdir", "uid", "gid", "chmod-socket", "chown-socket", "vacuum", "master", "die-on-term",
                 "pidfile", "pidfile2", "daemonize", "daemonize2", "logto", "logto2", "stats", "plugin",
                 "plugins", "virtualenv", "venv", "home", "need-app"}


class TemplateError(Exception):
    pass


def fill(template: str, values: dict[str, str], source: str = "template") -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"{source} uses ${{{name}}}, which no setting defines")
        return values[name]

    return PLACEHOLDER.sub(value, template)


def trusted_proxies(resolved: Resolved) -> tuple[str, str]:
    """(geo entries, set_real_ip_from lines) for TRUSTED_PROXIES."""
    networks = [str(ipaddress.ip_network(item, strict=False))
                for item in words(resolved.values["TRUSTED_PROXIES"])]
    header = "# Generated from TRUSTED_PROXIES by flaskbox/render.py.\n"
    geo = header + "".join(f"{network} 1;\n" for network in networks)
    real_ip = header + "".join(f"set_real_ip_from {network};\n" for network in networks)
    return geo, real_ip


def allowed_hosts(resolved: Resolved) -> str:
    """map entries for ALLOWED_HOSTS: any host when empty."""
    hosts = words(resolved.values["ALLOWED_HOSTS"].lower())
    lines = ["# Generated from ALLOWED_HOSTS by flaskbox/render.py."]
    if not hosts:
        lines.append("default 1;")
    else:
        lines.append("default 0;")
        # nginx's hostnames map wants IPv6 literals in brackets, as in Host.
        lines += [f"{host if ':' not in host or host.startswith('[') else f'[{host}]'} 1;" for host in hosts]
    return "\n".join(lines) + "\n"


def upload_limits(resolved: Resolved) -> str:
    slots, per_client = resolved.derived["UPLOAD_SLOTS"], resolved.derived["UPLOAD_SLOTS_PER_CLIENT"]
    if slots == "0":
        return "# MAX_BODY_SIZE=0: uploads are not limited (UPLOAD_SPACE cannot bound them).\n"
    return ("# Generated from UPLOAD_SPACE / MAX_BODY_SIZE by flaskbox/render.py.\n"
            f"limit_conn flaskbox_uploads {slots};\n"
            f"limit_conn flaskbox_upload_clients {per_client};\n")


def sticky(values: dict[str, str]) -> bool:
    """gevent with more than one process: in-process state (Socket.IO
    sessions, WebSocket rooms) needs each client kept on one process."""
    return values["WORKER_CLASS"] == GEVENT and int(values["UWSGI_PROCESSES"]) > 1


def socket_paths(values: dict[str, str]) -> list[str]:
    """uWSGI's sockets: one for all workers, or one per process (sticky)."""
    runtime = values["RUNTIME_DIR"]
    if not sticky(values):
        return [f"{runtime}/uwsgi.sock"]
    return [f"{runtime}/uwsgi-{number}.sock" for number in range(1, int(values["UWSGI_PROCESSES"]) + 1)]


def uwsgi_sockets(values: dict[str, str]) -> str:
    header = "; Generated from WORKER_CLASS and UWSGI_PROCESSES by flaskbox/render.py.\n[uwsgi]\n"
    paths = socket_paths(values)
    if len(paths) == 1:
        return header + f"http-socket = {paths[0]}\n"
    # Socket N-1 is accepted on by worker N alone.
    return header + "".join(f"http-socket = {path}\nmap-socket = {index}:{index + 1}\n"
                            for index, path in enumerate(paths))


def upstream_servers(values: dict[str, str]) -> str:
    """nginx's servers for uWSGI, with max_conns shared out among them."""
    paths = socket_paths(values)
    header = "# Generated from WORKER_CLASS and UWSGI_PROCESSES by flaskbox/render.py.\n"
    if len(paths) == 1:
        return header + f"server unix:{paths[0]} max_conns={values['UPSTREAM_MAX_CONNS']};\n"
    # A client (its real address, behind TRUSTED_PROXIES) always reaches the
    # same process; `consistent` keeps most clients where they were if the
    # process count changes.
    per_process = -(-int(values["UPSTREAM_MAX_CONNS"]) // len(paths))
    return (header + "hash $binary_remote_addr consistent;\n"
            + "".join(f"server unix:{path} max_conns={per_process};\n" for path in paths))


def user_ini(path: Path, notes: list[str]) -> str:
    """The [uwsgi] options of the user's ini, minus those that name the app
    or that flaskbox owns (a note for each of the latter)."""
    kept = []
    for key, value in discover.read_uwsgi_ini(path):
        if key in OWNED_OPTIONS:
            notes.append(f"{path}: `{key} = {value}` left out: flaskbox sets {key} itself")
        elif key not in APP_OPTIONS:
            kept.append(f"{key} = {value}\n")
    return f"\n; {path} (UWSGI_INI), without what names the app or flaskbox owns\n[uwsgi]\n" + "".join(kept)


def uwsgi_ini(resolved: Resolved, env: dict[str, str], conf_dir: Path) -> str:
    """app.ini filled in, then UWSGI_INI, then UWSGI_<OPTION> variables:
    later values win, so the user's do."""
    text = fill((conf_dir / "app.ini").read_text(), {**resolved.values, **resolved.derived}, "app.ini")
    if resolved.values["UWSGI_INI"]:
        text += user_ini(Path(resolved.values["UWSGI_INI"]), resolved.notes)
    options = uwsgi_options(env)
    if options:
        lines = "".join(f"{key} = {value}\n" for key, value in options)
        text += f"\n; UWSGI_<OPTION> variables\n[uwsgi]\n{lines}"
    return text


def static_location(values: dict[str, str], app: dict | None, conf_dir: Path = CONF_DIR) -> str:
    """The static location: STATIC_URL and STATIC_PATH where set, else the
    Flask app's own static folder and URL, else /static from /app/static.
    `app` is what the loaded app said of itself (None: not loaded yet)."""
    if values["STATIC_ENABLED"] != "1":
        return "# STATIC_ENABLED=0: static URLs go to the app.\n"
    url, path = values["STATIC_URL"], values["STATIC_PATH"]
    if not (url and path):
        if app is None:
            return "# The static location follows once the app is loaded (flaskbox/serve.py).\n"
        if app.get("static_folder") and app.get("static_url_path"):
            url = url or app["static_url_path"].rstrip("/")
            path = path or app["static_folder"].rstrip("/")
        url, path = url or "/static", path or "/app/static"
    plain = PLAIN_PATH.fullmatch(url) and PLAIN_PATH.fullmatch(path)
    if not (plain and len(url) > 1):
        return (f"# The app's static folder ({path} at {url}) is not a plain path for nginx:"
                " the app serves it.\n")
    static_values = {**values, "STATIC_URL": url, "STATIC_PATH": path}
    text = fill((conf_dir / "nginx-static.conf").read_text(), static_values, "nginx-static.conf")
    if values.get("URL_PREFIX"):
        # url_for gives URL_PREFIX + url: a proxy that passes the path whole
        # sends that, which nginx serves from disk too.
        prefixed = {**static_values, "STATIC_URL": values["URL_PREFIX"] + url}
        text += (f"\n# URL_PREFIX={values['URL_PREFIX']}: the same files under it.\n"
                 + fill((conf_dir / "nginx-static.conf").read_text(), prefixed, "nginx-static.conf"))
    if values.get("STATIC_INDEX") == "1":
        text += ("\n# STATIC_INDEX=1: / is the static folder's index.html.\n"
                 f"location = / {{\n    rewrite ^ {url}/index.html last;\n}}\n")
    return text


def render_production(resolved: Resolved, env: dict[str, str], conf_dir: Path = CONF_DIR) -> list[Path]:
    """Writes every production config file; returns their paths."""
    runtime = Path(resolved.values["RUNTIME_DIR"])
    nginx_dir = runtime / "nginx"
    nginx_dir.mkdir(parents=True, exist_ok=True)
    values = {**resolved.values, **resolved.derived}
    geo, real_ip = trusted_proxies(resolved)
    static = static_location(values, None, conf_dir)
    files = {
        nginx_dir / "nginx.conf": fill((conf_dir / "nginx.conf").read_text(), values, "nginx.conf"),
        nginx_dir / "static.conf": static,
        nginx_dir / "trusted-proxies.conf": geo,
        nginx_dir / "real-ip.conf": real_ip,
        nginx_dir / "allowed-hosts.conf": allowed_hosts(resolved),
        nginx_dir / "upload-limits.conf": upload_limits(resolved),
        nginx_dir / "upstream.conf": upstream_servers(values),
        runtime / "uwsgi-sockets.ini": uwsgi_sockets(values),
        runtime / "uwsgi.ini": uwsgi_ini(resolved, env, conf_dir),
    }
    for path, text in files.items():
        path.write_text(text)
    return list(files)
