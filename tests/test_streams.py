"""Streams flow: a streamed response (a generator, stream_with_context,
Server-Sent Events) reaches the client chunk by chunk as the app yields it,
with either worker class and in debug mode. Server-Sent Events are never
compressed; another streamed type is, chunk by chunk; ordinary responses
stay compressed."""

import time

import pytest
import requests

from sse import read_stream

MODES = ["sync", "gevent", "debug"]


@pytest.mark.parametrize("mode", MODES)
def test_each_event_arrives_when_it_is_sent(realtime, mode, figure):
    c = realtime(mode)
    started = time.time()
    stream = read_stream(c.port, "/events?count=6&every=0.5")
    assert stream.status == 200 and stream.complete, stream
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in stream.headers
    assert "x-accel-buffering" not in stream.headers  # nginx's, never passed on
    events = stream.events()
    assert [payload["n"] for _, payload in events] == list(range(6))
    delays = [arrived - payload["sent"] for arrived, payload in events]
    figure(f"{mode}: worst delay of 6 events 0.5 s apart, ms", f"{max(delays) * 1000:.1f}")
    assert max(delays) < 0.1, delays
    # The first event came long before the last was produced: not buffered.
    assert events[0][0] - started < 1.0 and events[-1][0] - events[0][0] > 2.0


@pytest.mark.parametrize("mode", MODES)
def test_a_text_generator_flows_to_requests_with_gzip(realtime, mode):
    """requests asks for gzip: nginx compresses text/plain and flushes each
    chunk, and every line still arrives as it is produced."""
    c = realtime(mode)
    arrivals = []
    with requests.get(f"http://127.0.0.1:{c.port}/plain?count=5&every=0.5", stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith(b"{"):
                arrivals.append((time.time(), line))
    assert len(arrivals) == 5
    sent = [float(line.split(b'"sent": ')[1].rstrip(b"}")) for _, line in arrivals]
    delays = [arrived - stamp for (arrived, _), stamp in zip(arrivals, sent, strict=True)]
    assert max(delays) < 0.1, delays


@pytest.mark.parametrize("mode", ["sync", "gevent"])
def test_ordinary_responses_stay_compressed(realtime, mode):
    c = realtime(mode)
    page = c.request("/page", headers={"Accept-Encoding": "gzip"})
    assert page.status == 200 and page.headers.get("content-encoding") == "gzip"
    events = read_stream(c.port, "/events?count=1", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in events.headers
