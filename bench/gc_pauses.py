"""A probe, not part of the image: logs each garbage collection in a uWSGI
worker that takes 1 ms or more, and every full one, to stderr (the
container's log), with the worker's age. Mounted into the app's folder and
imported in the master (UWSGI_IMPORT=gc_pauses), it shows what a
collection holds a worker for (docs/BENCHMARKS.md, "Collections in a new
worker"):

    docker run -d --network host -e PORT=8091 -e UWSGI_IMPORT=gc_pauses \\
        -v "$PWD/bench/gc_pauses.py:/app/gc_pauses.py:ro" flaskbox-bench:contenders
    docker logs CONTAINER 2>&1 | grep gc_pauses
"""

import gc
import os
import sys
import time

started = {"collection": 0.0, "worker": time.monotonic()}


def timed(phase: str, info: dict) -> None:
    if phase == "start":
        started["collection"] = time.perf_counter()
        return
    ms = (time.perf_counter() - started["collection"]) * 1000
    if ms >= 1 or info["generation"] == 2:
        age = time.monotonic() - started["worker"]
        sys.stderr.write(f"gc_pauses pid={os.getpid()} generation={info['generation']} ms={ms:.2f} "
                         f"collected={info['collected']} worker_age_s={age:.1f} "
                         f"frozen={gc.get_freeze_count()}\n")


def worker_started() -> None:
    started["worker"] = time.monotonic()


gc.callbacks.append(timed)
os.register_at_fork(after_in_child=worker_started)
