"""The settings table's chapter on traffic: what the server says of it
(logs, metrics), whether its ports are shared, and whose requests it
believes (proxies) or serves at all (host names)."""

from __future__ import annotations

from .forms import flag, host_list, network_list, one_of, whole
from .setting import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "LOG_FORMAT",
        default="text",
        form="text or json",
        parse=one_of("text", "json"),
        doc=("Log format: `text` (one readable line) or `json` (one object per request on stdout, and every "
             "stderr line a JSON object too: [production.md](production.md#logs))."),
        enforced=(
            "start.render.stdout_log (nginx.conf's ${STDOUT_LOG}, the health locations' own log)",
            "lib/common.sh: flaskbox_json_logs (stderr as JSON too: jsonlog.py)",
        ),
    ),
    Setting(
        "METRICS_PORT",
        default="",
        default_doc="(empty: off)",
        form="empty (off) or a port number from 1 to 65535 other than PORT",
        parse=lambda value: None if value == "" else whole(1, 65535)(value),
        doc=("Port for Prometheus metrics at `/metrics` (requests, durations, refusals by reason, workers, "
             "queue): [production.md](production.md#metrics). Empty: off."),
        enforced=(
            "sidecars.metrics.main",
            "start.render.metrics_main",
            "start.render.metrics_http",
            "start.render.probe_logs (the health locations' own metrics log)",
            "pool.wsgi.from_record (streams.OPEN.metrics_dir)",
            "pool.master.prepare_the_master (forks.SpawnGuard's count of OOM kills)",
            "settings.resolve._check_metrics_port",
            "settings.resolve._check_ports_free",
            "arbiter.helpers.Helpers (the metrics server)",
            "arbiter.arbiter.Arbiter.helper_ended (one that never listened ends the start)",
        ),
    ),
    Setting(
        "SHARE_PORT",
        default="0",
        form="1 (share PORT, TLS_PORT and METRICS_PORT with another container of this image) or 0",
        parse=flag,
        doc=("`0`: a start refuses (exit 2) a port something already listens on, which on the host network "
             "may be another container. `1`: nginx and the metrics server share their ports with other "
             "flaskbox containers (`reuseport`), for start-first updates on the host network "
             "([swarm.md](swarm.md#on-the-host-network)); the kernel spreads connections between them."),
        enforced=(
            "settings.resolve._check_ports_free",
            "settings.resolve.derived (REUSEPORT)",
            "nginx.conf: default_server${REUSEPORT}",
            "start.tls.server_conf (reuseport on TLS_PORT)",
            "sidecars.metrics.main (allow_reuse_port)",
        ),
    ),
    Setting(
        "TRUSTED_PROXIES",
        default="",
        form="IP addresses or CIDRs separated by spaces or commas, e.g. 10.0.0.0/8,192.168.0.0/16",
        parse=network_list,
        doc=("Proxies whose `X-Forwarded-*` headers are believed, and whose other proxy headers "
             "(`X-Script-Name`, ...) reach the app. Empty: none, from anyone."),
        enforced=(
            "start.render.trusted_proxies",
            "start.render.per_request (FORWARDED_FOR)",
            "nginx.conf: trusted-proxies.conf (geo $flaskbox_trusted)",
            "nginx.conf: real-ip.conf (set_real_ip_from)",
            "request.request.Request (the `trusted` flag nginx sends)",
            "request.forwarded.apply (`trusted`: a trusted proxy's forwarded headers believed)",
        ),
    ),
    Setting(
        "ALLOWED_HOSTS",
        default="",
        form=("host names separated by spaces or commas, e.g. example.com,.example.org (a leading dot adds "
              "subdomains; at most 253 characters a name, 63 a label, as DNS has them)"),
        parse=host_list,
        doc="Host names served; any other `Host` gets 400 from nginx. Empty: any host.",
        enforced=(
            "start.render.allowed_hosts",
            "start.render.per_request (HOST_REFUSAL)",
            "nginx.conf: allowed-hosts.conf",
            "pool.wsgi.from_record",
            "request.forwarded.apply (a trusted proxy's X-Forwarded-Host)",
        ),
    ),
)
