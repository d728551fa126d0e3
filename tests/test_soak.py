"""100k requests with worker recycling: no errors, memory stays bounded."""

import pytest

from load import Load

pytestmark = pytest.mark.slow

REQUESTS = 100_000


def test_100k_requests_with_recycling_no_errors_bounded_memory(containers, fixture_image, figure):
    # Recycling every 2000 requests: with 4 workers each is replaced about 12
    # times during the run, under load. uWSGI keeps a worker for at least 10 s
    # whatever its count (min-worker-lifetime), longer than this whole run.
    env = {"UWSGI_MAX_REQUESTS": "2000", "UWSGI_MIN_WORKER_LIFETIME": "1", "UWSGI_PROCESSES": "4"}
    c = containers.serving(image=fixture_image["image"], env=env)
    # Warm up (first requests fault in the app's pages), then measure.
    with Load(c.port, connections=16, max_requests=2000, seconds=30):
        pass
    rss_start = c.rss_kb()
    with Load(c.port, connections=32, max_requests=REQUESTS, seconds=240) as load:
        pass
    rss_end = c.rss_kb()
    outcomes = load.outcomes
    figure("soak: requests, errors", f"{len(outcomes)}, {len(Load.failures(outcomes))}")
    figure("soak: container RSS start -> end, MB", f"{rss_start / 1024:.1f} -> {rss_end / 1024:.1f}")
    figure("soak: p50 / p99 ms", f"{Load.p50_ms(outcomes):.1f} / {Load.p99_ms(outcomes):.1f}")
    assert len(outcomes) == REQUESTS, f"only {len(outcomes)} requests in the time limit"
    assert Load.failures(outcomes) == [], Load.summary(outcomes)
    recycled = c.logs().count("...The work of process")
    figure("soak: workers recycled", str(recycled))
    assert recycled >= REQUESTS // 2000 // 2, c.logs()[-2000:]
    # Bounded: recycling keeps the total within 25% of where it started.
    assert rss_end <= rss_start * 1.25, f"RSS grew from {rss_start} kB to {rss_end} kB"
