"""The default pool holds what real apps wait on: routes that wait on I/O,
open event streams and slow downloads never take the pool from everyone
else. With the defaults (1 process per CPU x 32 threads, at least 2
processes: 64 threads on 2 CPUs), 50 Server-Sent Event clients get every
event on time while ordinary requests beside them keep a p99 under 100 ms."""

import pytest

from load import Load, percentile
from sse import Crowd

CLIENTS = 50
SECONDS = 10


@pytest.mark.slow
def test_50_event_streams_beside_ordinary_requests_with_the_defaults(realtime, figure):
    c = realtime("sync")
    # An event a second per client; ordinary requests that wait 20 ms on
    # I/O each (a database call), 4 at a time, all along.
    with Crowd(c.port, f"/events?count={SECONDS}&every=1", CLIENTS, SECONDS + 2) as crowd, \
            Load(c.port, path="/busy?seconds=0.02", connections=4, seconds=SECONDS) as load:
        pass
    assert crowd.errors == [] and crowd.statuses == [200] * CLIENTS, (crowd.errors[:5], set(crowd.statuses))
    # Every client got every event.
    assert min(crowd.counts) == SECONDS, sorted(crowd.counts)[:10]
    delay_p99 = percentile(crowd.delays, 99)
    latencies = [outcome.latency for outcome in load.outcomes]
    assert load.outcomes and all(outcome.status == 200 for outcome in load.outcomes), \
        Load.summary(load.outcomes)
    ordinary_p99 = percentile(latencies, 99)
    figure(f"sync defaults, {CLIENTS} SSE clients for {SECONDS} s: events each (min), event delay p99 ms, "
           "ordinary requests, their p99 ms",
           f"{min(crowd.counts)}, {delay_p99 * 1000:.1f}, {len(latencies)}, {ordinary_p99 * 1000:.1f}")
    assert delay_p99 < 0.1, f"event delay p99 {delay_p99 * 1000:.0f} ms"
    assert ordinary_p99 < 0.1, f"ordinary p99 {ordinary_p99 * 1000:.0f} ms\n{c.logs()[-3000:]}"
