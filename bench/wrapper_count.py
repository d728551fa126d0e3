"""The WSGI wrapper's instructions a hello request, counted in process:
exact from run to run, where the container's price list (prices.py) moves
by 1 to 2k. For weighing one change to the request path against another.

    python3 bench/wrapper_count.py [--lib DIR] [--open] [--pieces]

Runs N hello requests through serve.Serve in this process, with the gate
as a warm worker of 16 threads has it at a limit of one (15 threads
parked), under callgrind, for N = 1000 and 4000, and again calling the app
directly: what one more request costs, wrapped less bare. Three things
that follow the clock are held still, since callgrind counts every thread
at the speed of its own slow run: no watchdog thread (its looks), no end
of a window (the limit's rule), and no request that waited (its peer
header is dated ahead). The addresses are not randomized (setarch -R): an
object's address is its hash, and the gate keeps its requests in a set.
Needs valgrind and setarch on the host; --lib measures another checkout's
lib (a worktree of an earlier commit); --pieces counts the wrapper again
with each piece the price list takes out (variants.WRAPPER_EDITS) out in
turn, and with ADAPTIVE_THREADS=0's gate. The app is a bare WSGI callable,
so that only the wrapper's steps differ between the two counts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import hello
import variants

LIB = Path(__file__).resolve().parent.parent / "lib"
THREADS = 16
COUNTS = (1000, 4000)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "11")])
    return [b"Hello World"]


class FileWrapper:
    """As uWSGI's wsgi.file_wrapper: the same object for every request."""


# The rest of what uWSGI puts in every request's environ.
WSGI = {"wsgi.input": None, "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.version": (1, 0), "wsgi.file_wrapper": FileWrapper}


def served(requests: int, gate_kind: str, direct: bool) -> int:
    """`requests` hello requests, through the wrapper or straight to the app;
    the bytes answered (a wrapper that broke answers none)."""
    from flaskbox.request import admission, guards, unlimited
    from flaskbox.request.deadline import Times
    from flaskbox.request.serve import Serve

    watchdog = guards.Watchdog(30.0, 0, THREADS)
    watchdog.started = True
    times = Times(30.0, 4)
    hook = None
    if gate_kind == "open":
        gate = unlimited.Timed(times)
    else:
        gate = watchdog.gate = admission.Gate(THREADS, times, running=watchdog.running)
        gate.parked = THREADS - 1
        for _ in range(THREADS - 1):
            sleeper = threading.Lock()
            sleeper.acquire()
            gate.sleepers.append(sleeper)
        hook = gate.after_request
    target = app if direct else Serve(app, 30.0, gate=gate, watchdog=watchdog, compressed=True)
    answered = 0
    for _ in range(requests):
        environ = hello.environ(time.time() + 1e6, HTTP_ACCEPT_ENCODING="gzip", CONTENT_LENGTH="", **WSGI)
        answered += sum(len(part) for part in target(environ, lambda status, headers, exc_info=None: None))
        if hook is not None and not direct:
            hook()
    return answered


def counted(lib: Path, gate_kind: str, direct: bool) -> int:
    """Instructions one more request costs, by callgrind."""
    # Once without valgrind first: the .pyc files written, so that neither count compiles.
    subprocess.run([sys.executable, __file__, "--lib", str(lib), "--serve", "1"], check=True)
    totals = []
    for requests in COUNTS:
        out = Path(f"/tmp/wrapper-count-{os.getpid()}.out")
        command = ["setarch", os.uname().machine, "-R", "valgrind", "--tool=callgrind",
                   f"--callgrind-out-file={out}", sys.executable, __file__, "--lib", str(lib),
                   "--serve", str(requests), *(["--open"] if gate_kind == "open" else []),
                   *(["--direct"] if direct else [])]
        run = subprocess.run(command, capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": "0"})
        out.unlink(missing_ok=True)
        found = re.search(r"Collected : (\d+)", run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(f"wrapper_count: the run failed:\n{run.stderr[-2000:]}")
        totals.append(int(found.group(1)))
    return round((totals[1] - totals[0]) / (COUNTS[1] - COUNTS[0]))


def pieces(lib: Path, whole: int) -> dict[str, int]:
    """What each piece of the wrapper costs in process: the wrapper with it
    out, less the whole (the pieces made where the app is loaded, the gate
    and the wrapper itself, do not apply here: the gate is `--open`'s)."""
    names = sorted({name for edits in variants.WRAPPER_EDITS.values() for name, _, _ in edits})
    sources = {name: (lib / "flaskbox" / name).read_text() for name in names}
    costs = {"ADAPTIVE_THREADS' gate (against unlimited.Timed)": whole - wrapper(lib, "open")}
    for piece in variants.WRAPPER_EDITS:
        changed = {name: text for name, text in variants.without_pieces(sources, [piece]).items()
                   if text != sources[name]}
        if any(name.startswith("pool/") for name in changed):
            continue
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "lib"
            shutil.copytree(lib, copy, ignore=shutil.ignore_patterns("__pycache__"))
            for name, text in changed.items():
                (copy / "flaskbox" / name).write_text(text)
            costs[piece] = whole - wrapper(copy, "gate")
    return costs


def wrapper(lib: Path, gate_kind: str) -> int:
    return counted(lib, gate_kind, False) - counted(lib, gate_kind, True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", type=Path, default=LIB,
                        help="the lib folder to measure (default: this checkout's)")
    parser.add_argument("--open", action="store_true", help="ADAPTIVE_THREADS=0's gate (unlimited.Timed)")
    parser.add_argument("--pieces", action="store_true", help="each piece's cost too")
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)  # the measured run itself
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(args.lib))
    gate_kind = "open" if args.open else "gate"
    if args.serve is not None:
        from flaskbox.request import admission
        admission.WINDOW = 1e9  # no window ends
        served(10, gate_kind, args.direct)  # the imports, and each first time, before the count
        return 0 if served(args.serve, gate_kind, args.direct) == 11 * args.serve else 1
    missing = [tool for tool in ("valgrind", "setarch") if shutil.which(tool) is None]
    if missing:
        print(f"wrapper_count: needs {' and '.join(missing)} on this host (apt-get install valgrind)",
              file=sys.stderr)
        return 2
    wrapped, bare = counted(args.lib, gate_kind, False), counted(args.lib, gate_kind, True)
    print(f"{args.lib}: {wrapped} instructions a hello request wrapped ({gate_kind}), {bare} bare: "
          f"the wrapper {wrapped - bare}")
    if args.pieces:
        for piece, cost in pieces(args.lib, wrapped - bare).items():
            print(f"  {cost:>6}  {piece}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
