"""flaskbox against variants of itself: one setting changed at a time
(--levers), or one nginx feature taken out at a time (--features)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from harness import CONTAINERS, CONTENDERS_TAG, PRODUCT_TAG, REPO, ROUTES, log
from image import build_images
from report import machine
from runs import race, summarise
from servers import Contender


def levers(docker_args: tuple[str, ...]) -> list[Contender]:
    """flaskbox with one setting changed at a time, against its defaults:
    what each lever is worth, measured rather than assumed (--levers)."""
    variants = {
        "defaults": {},
        "4 processes x 1 thread": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "1"},
        "4 processes x 4 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "4"},
        "4 processes x 8 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "8"},
        "4 processes x 32 threads": {"UWSGI_PROCESSES": "4", "UWSGI_THREADS": "32"},
        "2 processes x 16 threads": {"UWSGI_PROCESSES": "2", "UWSGI_THREADS": "16"},
        "8 processes x 8 threads": {"UWSGI_PROCESSES": "8", "UWSGI_THREADS": "8"},
        "thunder lock": {"UWSGI_THUNDER_LOCK": "true"},
        "no recycling": {"UWSGI_MAX_REQUESTS": "0"},
        "1 nginx worker": {"NGINX_WORKER_PROCESSES": "1"},
        "JSON access log": {"LOG_FORMAT": "json"},
    }
    return [Contender("flaskbox" if name == "defaults" else f"flaskbox, {name}", f"flaskbox, {name}", [],
                      env=env, docker_args=docker_args) for name, env in variants.items()]


# What each of nginx.conf's features costs, measured alone (--features): the
# text to change in nginx.conf to take that feature out, and what replaces it.
# Every text must be found, so an edit of nginx.conf that moves one fails here
# loudly instead of measuring nothing.
FEATURE_EDITS = {
    "access log": [
        # The rest of the line, the health exemption's condition, becomes a comment.
        ("access_log /dev/stdout ${LOG_FORMAT} buffer=64k flush=1s", "access_log off; #")],
    "health requests left out of the log": [
        (" if=$flaskbox_logged;", ";")],
    "request id": [
        ("add_header X-Request-ID $flaskbox_request_id always;", ""),
        ("proxy_set_header X-Request-ID $flaskbox_request_id;", ""),
        (" id=$flaskbox_request_id", "")],
    "request id map (the incoming id's check)": [
        ('default $request_id;\n        "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id;',
         "default $request_id;")],
    "hardening and Retry-After headers": [
        ("add_header X-Content-Type-Options $flaskbox_nosniff always;", ""),
        ("add_header X-Frame-Options $flaskbox_frame_options always;", ""),
        ("add_header Referrer-Policy $flaskbox_referrer_policy always;", ""),
        ("add_header Retry-After $flaskbox_retry_after always;", "")],
    "host maps and ALLOWED_HOSTS": [
        ("if ($flaskbox_refuse_host) {\n            return 400;\n        }", ""),
        ("proxy_set_header Host $flaskbox_host;", "proxy_set_header Host $http_host;"),
        ("$remote_port $flaskbox_server_port", "$remote_port $server_port")],
    # The others (Proto, Host, Port, Prefix, Forwarded) are chosen in the
    # wrapper (flaskbox/forwarded.py), which nginx.conf cannot take out.
    "forwarded headers from trusted proxies": [
        ("proxy_set_header X-Forwarded-For $flaskbox_forwarded_for;", "")],
    "per-client and upload limits": [
        ("limit_conn flaskbox_clients ${CONNECTIONS_PER_CLIENT};", ""),
        ("include ${RUNTIME_DIR}/nginx/upload-limits.conf;", "")],
}


def without_features(template: str, names: list[str]) -> str:
    """nginx.conf with the named features taken out."""
    for name in names:
        for old, new in FEATURE_EDITS[name]:
            if old not in template:
                raise SystemExit(f"bench: nginx.conf no longer has {old!r} ({name}): update FEATURE_EDITS")
            template = template.replace(old, new)
    return template


def features(docker_args: tuple[str, ...], workdir: Path) -> list[Contender]:
    """flaskbox with one nginx feature taken out at a time, and with all of
    them out: each one's nginx.conf is mounted over the image's template."""
    template = (REPO / "nginx.conf").read_text()
    variants = {"flaskbox": [], **{f"flaskbox, no {name}": [name] for name in FEATURE_EDITS},
                "flaskbox, none of these": list(FEATURE_EDITS)}
    entrants = []
    for number, (label, names) in enumerate(variants.items()):
        conf = workdir / f"nginx-{number}.conf"
        conf.write_text(without_features(template, names))
        conf.chmod(0o644)
        mount = ("-v", f"{conf}:/etc/flaskbox/nginx.conf:ro") if names else ()
        entrants.append(Contender(label, label, [], docker_args=(*docker_args, *mount)))
    return entrants


def run_variants(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--levers or --features: flaskbox against variants of itself, written
    to levers.json or features.json (with --cpus N: levers-N-cpus.json, ...)."""
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    docker_args = ("--cpus", str(args.cpus)) if args.cpus else ()
    kind = "levers" if args.levers else "features"
    routes = {"hello": ROUTES["hello"], "realistic": ROUTES["realistic"], "wait 5 ms": "/wait"}
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-bench-"))
    try:
        entrants = levers(docker_args) if args.levers else features(docker_args, workdir)
        summary = summarise(runs := race(entrants, routes, rounds, seconds))
    finally:
        CONTAINERS.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "cpus": args.cpus,
               "runs": runs, "summary": summary}
    name = f"{kind}-{args.cpus:g}-cpus.json" if args.cpus else f"{kind}.json"
    (args.out / name).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    for contender, routes_of in summary.items():
        for route, medians in routes_of.items():
            ratio = medians["rps_ratio_to_flaskbox"]
            log(f"{contender:32} {route:9} {medians['rps']:8.0f} req/s ({ratio:.2f}x) "
                f"p99 {medians['p99_ms']:6.2f} ms  CPU µs/request {medians['cpu_us_per_request']}")
    return 0
