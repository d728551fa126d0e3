"""flaskbox benchmark: production mode against its peers, in one run.

    bench/run.sh                 the full run (about 13 minutes on 2 cores)
    bench/run.sh --levers        flaskbox with one setting changed at a time
    bench/run.sh --features      flaskbox with one nginx feature taken out at a time, and the bare pass
    bench/run.sh --pools         flaskbox with other shapes of its uWSGI pool
    bench/run.sh --rate R ...    --levers, --pools or --features at R requests/s, open loop
    bench/run.sh --cpus 1 ...    every container limited to that many CPUs
    bench/run.sh --profile       where the CPU goes: flaskbox and Granian, hello and the 5 ms route
    bench/run.sh --traffic       waiting routes, slow downloads, open streams (traffic.py)
    bench/run.sh --latency       p99 and p99.9 at 25/50/75 % of Granian's capacity, open loop (latency.py)
    bench/run.sh --floor         flaskbox against its floor: throughput, p99 and p99.9 at 25/50 % of it
    bench/run.sh --wrapper --rate R   what each piece of the WSGI wrapper costs a request (CPU µs)
    bench/run.sh --timeline --rate R  each hello request's latency beside the container's events (timeline.py)
    bench/run.sh --prices        instructions a request each guarantee costs, callgrind (prices.py)
    bench/run.sh --prices --before COMMIT   the same, and that version's totals, in one run (and prices.png)
    bench/run.sh --floor --before COMMIT    the floor's run with that version beside flaskbox
    bench/run.sh --overload --before COMMIT the overload's run with that version beside flaskbox
    bench/run.sh --apps --before COMMIT     the large apps' shapes with that version beside flaskbox
    bench/run.sh --account       where a saturated request's time goes, every process on the machine:
                                 flaskbox, its floor, nginx + gunicorn and Granian (account.py)
    bench/run.sh --pages         pages that compute (40 ms, 12 ms + a wait) at 20 and 64 clients and an
                                 open loop: flaskbox's pool shapes, gunicorn sync and gthread, Granian,
                                 the floor (pages.py)
    bench/run.sh --pages --ballast MB   the pool's memory after /heavy, an app importing MB of objects,
                                 against gunicorn sync --preload (pool_memory.py)
    bench/run.sh --tail          where the slowest percent of /list's requests waited (tail.py)
    bench/run.sh --apps [--flaskbox-env NAME=VALUE]   pages shaped like Keystone's and CKAN's, a new
                                 container's first 20 s and warm rounds: flaskbox (and each such
                                 shape of it) against gunicorn sync and the apps' own uWSGI (apps.py)
    bench/run.sh --overload      logins computing outside the lock past what the CPUs can serve, beside
                                 busy neighbours, and a search waiting for its engine threads: against
                                 gunicorn sync and Granian (overload.py)
    bench/run.sh --smoke         2 s per contender, one route, one round
    bench/run.sh --out DIR       write results somewhere else

Every contender serves the same app (bench/app) from the same image, with
--network host on its own loopback port; wrk drives each in turn, interleaved
round by round so that a slow moment of the machine hits all of them alike.
Each run also records the CPU time each process group (nginx, the app
server, wrk) spent per request. Containers are driven with the test suite's
own driver (tests/containers.py). Results: RESULTS_DIR/latest.json and
latest.png; docs/BENCHMARKS.md explains them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

# harness first: it puts tests/ on sys.path for the test suite's helpers.
from harness import (
    BENCH,
    CONNECTIONS,
    CONTAINERS,
    CONTENDERS_TAG,
    PRODUCT_TAG,
    ROUTES,
    SECOND_CONTENDERS_TAG,
    SECOND_PRODUCT_TAG,
    log,
)
from image import build_images, default_pool, measure_image, measure_second_base, streams_held
from profiling import run_profile
from report import chart, goals, machine
from runs import measure, race, start_warm, summarise
from servers import Contender, bare_pass, contenders, nginx_gunicorn, traffic_contenders
from variants import run_variants


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 s per contender, hello only, one round")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where latest.json/png go")
    parser.add_argument("--base-image", required=True, help="BASE_IMAGE for the build")
    parser.add_argument("--second-base", help="another BASE_IMAGE: flaskbox on it joins the run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, help="each run's length (6; --apps: 20)")
    variants = parser.add_mutually_exclusive_group()
    variants.add_argument("--levers", action="store_true",
                          help="flaskbox with one setting changed at a time, hello and realistic only")
    variants.add_argument("--features", action="store_true",
                          help="flaskbox with one nginx feature taken out at a time (nginx.conf), "
                               "and the bare pass (the floor)")
    variants.add_argument("--pools", action="store_true",
                          help="flaskbox with other shapes of the uWSGI pool (processes x threads)")
    variants.add_argument("--traffic", action="store_true",
                          help="the waiting route, slow downloads and open streams against the peers")
    variants.add_argument("--profile", action="store_true",
                          help="perf and py-spy samples of flaskbox (perf of Granian) under wrk, "
                               "hello world and the 5 ms route, --seconds long each")
    variants.add_argument("--latency", action="store_true",
                          help="the tail at fixed offered rates (25/50/75 %% of Granian's capacity), "
                               "open loop, against Granian, tiangolo-config and the bare pass")
    variants.add_argument("--floor", action="store_true",
                          help="flaskbox against its floor (the bare pass, with an access log): throughput, "
                               "and the tail at 25/50 %% of the floor's capacity, open loop")
    variants.add_argument("--wrapper", action="store_true",
                          help="with --rate: the CPU each piece of the WSGI wrapper costs a request, "
                               "each taken out in turn")
    variants.add_argument("--timeline", action="store_true",
                          help="with --rate: flaskbox's hello world at that open-loop rate for "
                               "--sweep-seconds, each request's latency beside the health checks and "
                               "worker respawns")
    variants.add_argument("--prices", action="store_true",
                          help="the instructions each nginx feature, each piece of the WSGI wrapper and the "
                               "hop's protocol cost a request (callgrind: load-independent)")
    variants.add_argument("--account", action="store_true",
                          help="where a saturated request's time goes, for every process on the machine: "
                               "flaskbox, its floor, nginx + gunicorn (gthread) and Granian, interleaved")
    variants.add_argument("--pages", action="store_true",
                          help="pages that compute, at 20 and 64 clients and an open loop at half the "
                               "peers' capacity: flaskbox's pool shapes against gunicorn sync (--preload) "
                               "and gthread, Granian and the floor (at least 5 rounds)")
    variants.add_argument("--overload", action="store_true",
                          help="work outside Python's lock past what the CPUs can serve (a PBKDF2 login, 40 "
                               "clients, a 3 s deadline) beside two busy loops and beside a busy container, "
                               "and a search waiting for engine threads of its own: flaskbox against "
                               "gunicorn sync and Granian (overload.py)")
    variants.add_argument("--tail", action="store_true",
                          help="where the slowest percent of /list's requests waited: outside the app, in "
                               "it waiting, in it computing (tail.py)")
    variants.add_argument("--apps", action="store_true",
                          help="pages shaped like Keystone's and CKAN's, 20 users, a new container's first "
                               "window and warm ones: flaskbox against gunicorn sync and the apps' uWSGI")
    variants.add_argument("--interpreter", action="store_true",
                          help="the same pure-Python function in each base's python3, in a program around "
                               "its shared libpython, and in a worker of the image (--base-image and "
                               "--second-base)")
    parser.add_argument("--flaskbox-env", action="append", default=[], metavar="NAME=VALUE[,NAME=VALUE]",
                        help="with --apps: flaskbox with this environment joins the run (as many as given)")
    parser.add_argument("--also-base", action="append", default=[], metavar="BASE_IMAGE",
                        help="with --interpreter: a further base to time (as many as given)")
    parser.add_argument("--ballast", type=int, metavar="MB",
                        help="with --pages: only the memory goal, an app that imports this many MB of "
                             "objects (pool_memory.py)")
    parser.add_argument("--before", metavar="COMMIT",
                        help="with --prices, --floor, --account or --overload: that version of flaskbox's "
                             "Python and nginx templates measured in the same run, mounted over this image's "
                             "(before, after)")
    parser.add_argument("--sweep-rounds", type=int, default=0,
                        help="rounds of the fixed-rate sweep (default: 3 with --floor, 1 with --latency)")
    parser.add_argument("--sweep-seconds", type=float, default=15,
                        help="with --latency: seconds each fixed-rate run is counted (after a 2 s warm-up)")
    parser.add_argument("--rate",
                        help="with --levers, --pools or --features: each variant at this fixed open-loop "
                             "rate instead of wrk's saturation (requests/s; hello and the 5 ms route, or "
                             "HELLO,WAIT for a rate each)")
    parser.add_argument("--mount", action="append", default=[], metavar="LABEL=HOST:CONTAINER",
                        help="with --pools: a variant with a file or folder of flaskbox's own mounted over "
                             "the image's (another version of the wrapper, say)")
    parser.add_argument("--only", action="append", metavar="VARIANT",
                        help="with --levers, --pools or --features: only this variant beside the defaults; "
                             "with --pages: only these of flaskbox's shapes")
    parser.add_argument("--routes", action="append", metavar="ROUTE",
                        help="with --pages: only these of its routes (heavy, mixed, list)")
    parser.add_argument("--cpus", type=float,
                        help="with --levers, --features or --overload: limit every container to this many "
                             "CPUs (--overload: gunicorn's workers 2 x that + 1)")
    return parser.parse_args()


def run_traffic(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--traffic: traffic.py's three shapes, written to traffic.json/png."""
    import traffic
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    entrants = traffic_contenders()
    try:
        start_warm(entrants)
        measured = traffic.measure(entrants, rounds, seconds, measure, args.smoke, log)
    finally:
        CONTAINERS.cleanup()
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": args.smoke, "machine": machine(),
               "contenders": {c.name: c.label for c in entrants}, "results": measured}
    (args.out / "traffic.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    traffic.chart(measured, args.out / "traffic.png")
    log(f"traffic: {args.out / 'traffic.json'}, {args.out / 'traffic.png'}")
    return 0


def before_contender(ref: str) -> Contender:
    """flaskbox as version `ref` (its Python and nginx templates mounted over
    this image's), measured beside this one in the same run (--before)."""
    import compare
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-before-"))
    folder, _, templates = compare.earlier(ref, workdir)
    mounts = ["-v", f"{folder}:/usr/local/lib/flaskbox/flaskbox:ro"]
    for inside, text in templates.items():
        path = workdir / Path(inside).name
        path.write_text(text)
        path.chmod(0o644)
        mounts += ["-v", f"{path}:{inside}:ro"]
    workdir.chmod(0o755)
    return Contender("flaskbox-before", f"flaskbox at {ref} (before)", [], docker_args=tuple(mounts))


def run_latency(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--latency (or --floor): latency.py's saturation runs and fixed-rate
    sweep, against Granian's capacity (or the floor's)."""
    import latency
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    by_name = {c.name: c for c in contenders(*default_pool())}
    names, fractions = ((latency.FLOOR_COMPARED, latency.FLOOR_FRACTIONS) if args.floor
                        else (latency.COMPARED, latency.FRACTIONS))
    reference = "bare-pass" if args.floor else "granian"
    entrants = [by_name[name] for name in names]
    if args.floor and args.before:
        entrants.insert(0, before_contender(args.before))
    if args.smoke:  # two routes at one load, briefly: the path is exercised
        routes, fractions = {k: latency.ROUTES[k] for k in ("hello", "static 100 KB")}, (0.5,)
        return latency.run(entrants, routes, fractions, 1, 2, 2, 1, machine(), args.out, reference)
    # --floor's tails are medians of 3 rounds: one 15 s run's p99.9 is a
    # handful of requests, and moved 5x between runs of the same build.
    sweep_rounds = args.sweep_rounds or (3 if args.floor else 1)
    return latency.run(entrants, latency.ROUTES, fractions, rounds, seconds, args.sweep_seconds, 2,
                       machine(), args.out, reference, sweep_rounds)


def run_account(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--account: account.py's end-to-end account, at least 5 rounds."""
    import account
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    by_name = {c.name: c for c in contenders(*default_pool())}
    entrants = [by_name["flaskbox"], by_name["bare-pass"], nginx_gunicorn(), by_name["granian"]]
    if args.before:
        entrants.insert(1, before_contender(args.before))
    if args.smoke:  # the path exercised: one route, one round, two contenders
        return account.run(entrants[:2], {"hello": "/"}, 1, 2, machine(), args.out)
    import variants
    workdir = Path(tempfile.mkdtemp(prefix="flaskbox-account-"))
    workdir.chmod(0o755)
    unwrapped = variants.wrapper((), workdir)[1]  # the whole wrapper out: uWSGI calls the app
    unwrapped.name = "flaskbox-no-wrapper"
    ladder = (bare_pass(*default_pool(), "http"), unwrapped)
    return account.run(entrants, account.ROUTES, max(rounds, 5), seconds, machine(), args.out, ladder)


def run_pages(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--pages: pages.py's loads, at least 5 rounds (--only NAME: that
    contender alone beside the peers and the floor)."""
    import pages
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    entrants = pages.entrants(default_pool())
    if args.smoke:  # the path exercised: flaskbox and gunicorn sync, one route, one round
        entrants = [c for c in entrants if c.name in ("flaskbox", "nginx-gunicorn-sync")]
        return pages.run(entrants, 1, 1, machine(), args.out, routes={"heavy": pages.ROUTES["heavy"]},
                         clients=(4,))
    if args.ballast:
        import pool_memory
        entrants = [c for c in entrants if c.name in ("flaskbox", "nginx-gunicorn-sync")]
        return pool_memory.run(entrants, args.ballast, seconds, machine(), args.out)
    if args.only:
        entrants = pages.only(entrants, args.only)
    routes = {name: path for name, path in pages.ROUTES.items() if not args.routes or name in args.routes}
    return pages.run(entrants, max(rounds, 5), seconds, machine(), args.out, routes=routes)


def run_overload(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--overload: overload.py's loads, 20 s each, at least 3 rounds."""
    import overload
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    entrants = overload.entrants(args.cpus)
    if args.before:  # with the same deadline and quota
        entrants.insert(1, before_contender(args.before))
        entrants[1].env = dict(entrants[0].env)
        entrants[1].docker_args = (*entrants[1].docker_args, *entrants[0].docker_args)
    if args.smoke:  # the path exercised: flaskbox and gunicorn sync, one load, one round, no neighbour
        loads = {"login": ("/login", overload.LOGIN_CLIENTS, None)}  # (beside the suite's other tests)
        return overload.run(entrants[:2], 1, 5, machine(), args.out, loads)
    return overload.run(entrants, max(rounds, 3), max(seconds, 20), machine(), args.out)


def run_apps(args: argparse.Namespace, rounds: int, seconds: float) -> int:
    """--apps: apps.py's two shapes, flaskbox as the image has it and as
    each --flaskbox-env changes it."""
    import apps
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    entrants = apps.entrants(default_pool(), apps.overrides(args.flaskbox_env))
    if args.before:
        entrants.insert(1, before_contender(args.before))
    if args.smoke:  # the path exercised: flaskbox and the lazy uWSGI, short windows and set-ups
        entrants = [c for c in entrants if c.name in ("flaskbox", "uwsgi-keystone")]
        for contender in entrants:
            contender.env["BENCH_SETUP_SCALE"] = "0.2"
        return apps.run(entrants, 1, 4, machine(), args.out, warmup=1.0)
    return apps.run(entrants, rounds, seconds, machine(), args.out)


def run_full(args: argparse.Namespace, rounds: int, seconds: float, routes: dict[str, str]) -> int:
    """The full run: every contender, the image's own measurements and the
    streams held, written to latest.json/png."""
    started = time.monotonic()
    build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
    if args.second_base:
        build_images(args.second_base, SECOND_PRODUCT_TAG, SECOND_CONTENDERS_TAG)
    entrants = contenders(*default_pool())
    if args.second_base:
        entrants.insert(1, Contender("flaskbox-second-base", f"flaskbox production on {args.second_base}", [],
                                     image=SECOND_CONTENDERS_TAG))
    try:
        summary = summarise(runs := race(entrants, routes, rounds, seconds))
        image = measure_image(args.base_image, args.smoke)
        log("streams: Server-Sent Event clients held with ordinary traffic, per worker class")
        stream_clients, stream_seconds = (50, 6) if args.smoke else (1500, 20)
        streams = {worker_class: streams_held(worker_class, stream_clients, stream_seconds)
                   for worker_class in ("sync", "gevent")}
        second_base = measure_second_base(args.second_base, args.smoke) if args.second_base else None
    finally:
        CONTAINERS.cleanup()
    targets = goals(summary, image)
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "smoke": args.smoke,
        "machine": machine(),
        "settings": {"connections": CONNECTIONS, "wrk_threads": 2, "seconds_per_run": seconds,
                     "rounds": rounds, "routes": routes, "base_image": args.base_image,
                     "contenders": {c.name: c.label for c in entrants},
                     "where": "containers from one image (same base, Python and app), --network host"},
        "runs": runs,
        "summary": summary,
        "image": image,
        "streams": streams,
        "second_base": second_base,
        "targets": targets,
        "duration_s": round(time.monotonic() - started, 1),
    }
    (args.out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(summary, image, args.out / "latest.png")
    log(f"done in {results['duration_s']:.0f} s: {args.out / 'latest.json'}, {args.out / 'latest.png'}")
    for name, value in targets.items():
        log(f"target {name}: {value}")
    return 0


def main() -> int:
    # A run stopped with SIGTERM (a timeout, a killed chain of runs) unwinds
    # as Ctrl-C does: each contender's `finally` removes its container.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    if args.seconds is None:
        args.seconds = 20 if args.apps else 6
    rounds, seconds, routes = args.rounds, args.seconds, ROUTES
    if args.smoke:
        rounds, seconds, routes = 1, 2, {"hello": ROUTES["hello"]}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.levers or args.features or args.pools or args.wrapper:
        return run_variants(args, rounds, seconds)
    if args.profile:
        return run_profile(args)
    if args.traffic:
        return run_traffic(args, rounds, seconds)
    if args.latency or args.floor:
        return run_latency(args, rounds, seconds)
    if args.account:
        return run_account(args, rounds, seconds)
    if args.pages:
        return run_pages(args, rounds, seconds)
    if args.overload:
        return run_overload(args, rounds, seconds)
    if args.apps:
        return run_apps(args, rounds, seconds)
    if args.tail:
        import pages
        import tail
        build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
        by_name = {c.name: c for c in pages.entrants(default_pool())}
        entrants = [by_name[name] for name in ("flaskbox", "flaskbox 4x1", "nginx-gunicorn-sync", "granian")]
        # Short rounds, many (10 s each by default, at least 10): ratios
        # taken round by round, as the host's speed drifts (tail.py).
        return tail.run(entrants, 1 if args.smoke else max(rounds, 10), 2 if args.smoke else seconds + 4,
                        machine(), args.out, 1 if args.smoke else tail.FIRST_LOADS)
    if args.interpreter:
        import interpreter
        bases = [args.base_image, *([args.second_base] if args.second_base else []), *args.also_base]
        return interpreter.run(bases, args.out, machine(), 1 if args.smoke else 5)
    if args.prices:
        import prices
        build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
        return prices.run(args.out, machine(), args.before)
    if args.timeline:
        import timeline
        if not args.rate:
            raise SystemExit("bench.py: --timeline needs --rate (hello world's requests a second)")
        build_images(args.base_image, PRODUCT_TAG, CONTENDERS_TAG)
        return timeline.run(float(args.rate), args.sweep_seconds, args.out, machine())
    return run_full(args, rounds, seconds, routes)


if __name__ == "__main__":
    sys.exit(main())
