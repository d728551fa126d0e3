"""What every part of the benchmark shares: the paths, the image tags, the
load's shape, the one container factory and the one progress log."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The test suite's container driver and clients serve the benchmark too.
sys.path.insert(0, str(REPO / "tests"))
from containers import ContainerFactory  # noqa: E402

# FLASKBOX_BENCH_NAME names the images, so that a benchmark on a shared
# machine leaves the test suite's (tests/test_bench.py: "bench") alone.
NAME = os.environ.get("FLASKBOX_BENCH_NAME", "bench")
PRODUCT_TAG = f"flaskbox:{NAME}"  # the image under test, built from the repo
CONTENDERS_TAG = f"flaskbox-{NAME}:contenders"  # plus the other servers and bench/app
# The same two, built on the second base (--second-base): a new Python or
# distribution whose figures regress shows up in the same run.
SECOND_PRODUCT_TAG = f"flaskbox:{NAME}-second"
SECOND_CONTENDERS_TAG = f"flaskbox-{NAME}:contenders-second"
CONNECTIONS = 64
ROUTES = {"hello": "/", "template": "/page", "realistic": "/realistic", "static": "/static/blob.bin"}
# Every container the benchmark starts; each run mode removes them all at its end.
CONTAINERS = ContainerFactory(PRODUCT_TAG)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
