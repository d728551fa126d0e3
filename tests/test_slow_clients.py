"""Slow clients are cut off in bounded time, and nobody else notices:
slowloris connections are dropped by nginx. (Slow handlers:
test_request_timeout.py; slow readers of large responses:
test_slow_downloads.py.)"""

import asyncio
import threading
import time

from load import Load

SLOW_CONNECTIONS = 200


async def trickle_headers(port: int, seconds: float, opened: list[float]) -> float:
    """Sends a header line every second and never finishes the request;
    returns how long the server kept the connection open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    opened.append(started)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    try:
        while time.monotonic() - started < seconds:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 1) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue
            break  # any answer (408) also ends it
    except OSError:
        pass
    writer.close()
    return time.monotonic() - started


def slowloris(port: int, seconds: float, opened: list[float], results: list[float]) -> threading.Thread:
    """SLOW_CONNECTIONS trickling clients in a thread; `opened` fills as they
    connect, `results` with how long each was held."""
    async def attack():
        clients = (trickle_headers(port, seconds, opened) for _ in range(SLOW_CONNECTIONS))
        results.extend(await asyncio.gather(*clients))

    thread = threading.Thread(target=asyncio.run, args=(attack(),))
    thread.start()
    return thread


def normal_traffic(port: int) -> float:
    """p99 latency (ms) of 4 s of traffic on 8 connections, all 2xx."""
    with Load(port, path="/", connections=8, seconds=4) as load:
        pass
    assert load.outcomes and not Load.failures(load.outcomes), Load.summary(load.outcomes)
    return Load.p99_ms(load.outcomes)


def test_slowloris_is_cut_off_and_normal_traffic_does_not_notice(containers, fixture_image, figure):
    c = containers.serving(image=fixture_image["image"])
    baseline = normal_traffic(c.port)
    opened: list[float] = []
    held: list[float] = []
    attack = slowloris(c.port, 30, opened, held)
    # Measure while all the slow connections are open and trickling (they
    # are held for about 10 s; the measurement takes 4).
    c.wait_until(lambda: len(opened) == SLOW_CONNECTIONS, "every slow connection to open", timeout=10)
    during = normal_traffic(c.port)
    assert not held, "slow connections were dropped before the measurement ended"
    attack.join(40)
    assert len(held) == SLOW_CONNECTIONS
    figure("slowloris connections cut off after, seconds (max)", f"{max(held):.2f}")
    figure("p99 ms without / with 200 slowloris connections", f"{baseline:.1f} / {during:.1f}")
    assert max(held) < 15, f"a slow client was held {max(held):.1f}s"
    # Within 2x the baseline; 5 ms of floor absorbs scheduler noise on
    # sub-millisecond baselines.
    assert during <= 2 * max(baseline, 5.0), f"p99 {baseline:.1f} ms -> {during:.1f} ms"
    assert c.request("/").status == 200
