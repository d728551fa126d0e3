"""The hop from nginx to uWSGI holds under sustained load, on every base: no
healthy request is answered 502, and nginx never finds a connection to
uWSGI reset or closed under it. nginx 1.29.7 and later (Debian 14) keep
upstream connections open by default, which uWSGI closes after each answer:
nginx then sent the next request on a dead connection (a reset, a broken
pipe) and answered a POST, which it may not retry, with 502 (4 to 15 % of
them). A GET was retried, so clients saw nothing; the error log did.

The load mixes what real clients send: GETs, POSTs whose body the app reads,
POSTs it answers without reading (405), bodies small (in memory), large (on
disk) and absent, on keep-alive connections and on a new one per request,
with a reload (SIGHUP) in the middle."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading

import pytest

from helpers import docker

# Each connection of wrk takes these in turn (request() below): every shape
# of the issue, and the statuses only a working path gives each.
LUA = r"""
-- wrk.format sends only the headers given: each carries its Host.
local function headers(extra)
  local all = {["Host"] = "127.0.0.1"}
  for name, value in pairs(extra) do all[name] = value end
  return all
end
local form = headers({["Content-Type"] = "application/x-www-form-urlencoded"})
local closing = headers({["Content-Type"] = "application/x-www-form-urlencoded", ["Connection"] = "close"})
local large = string.rep("a=1&", 5000)  -- 20 KB: past nginx's memory buffer, to disk
local shapes = {
  wrk.format("GET", "/", headers({})),                      -- no body
  wrk.format("GET", "/", headers({["Connection"] = "close"})),
  wrk.format("POST", "/echo", form, "a=1&b=2"),             -- read by the app: 200
  wrk.format("POST", "/", form, "a=1&b=2"),                 -- not read: 405
  wrk.format("POST", "/", closing, "a=1&b=2"),
  wrk.format("PUT", "/echo", form, large),                  -- large, read
  wrk.format("POST", "/", form, large),                     -- large, not read
  wrk.format("POST", "/echo", headers({["Connection"] = "close"})),  -- none at all
}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} ; turn = 0 end
function request()
  turn = turn % #shapes + 1
  return shapes[turn]
end
function response(status, headers, body)
  counts[tostring(status)] = (counts[tostring(status)] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, ',
    summary.requests, e.connect, e.read, e.write, e.timeout), '"statuses": {')
  local first = true
  for status, n in pairs(total) do
    io.write(string.format('%s"%s": %d', first and "" or ", ", status, n))
    first = false
  end
  io.write("}}\n")
end
"""

# What nginx writes when the hop fails under it (the error log shares
# stderr with the rest of the container's log).
HOP_FAILURES = re.compile(r"reset by peer|Broken pipe|prematurely closed|upstream.*failed|no live upstreams")
SECONDS = 14


def wrk_run(port: int, script, seconds: int) -> dict:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed (tests/run.sh installs it)"
    out = subprocess.run([wrk, "-t2", "-c64", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60)
    line = next((line for line in out.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert line, f"wrk printed no result:\n{out.stdout}\n{out.stderr}"
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture
def hop(module_containers):
    return module_containers.run()


def test_no_healthy_request_meets_a_dead_upstream_connection(hop, tmp_path, figure):
    hop.wait_http("/")
    script = tmp_path / "hop.lua"
    script.write_text(LUA)
    result: dict = {}
    load = threading.Thread(target=lambda: result.update(wrk_run(hop.port, script, SECONDS)), daemon=True)
    load.start()
    # A reload once the load is under way: the next generation starts beside
    # the first, takes the new requests, and the first finishes its own.
    hop.wait_until(lambda: '" 405 ' in docker("logs", "--tail", "20", hop.name).stdout, "the load under way",
                   timeout=20)
    docker("kill", "-s", "HUP", hop.name)
    # stderr alone: the access log's lines, on stdout, run to megabytes.
    hop.wait_until(lambda: "reload: the old code (generation 1) has" in docker("logs", hop.name).stderr,
                   "the reload to retire the first generation", timeout=SECONDS, interval=0.5)
    load.join(SECONDS + 90)
    assert result, "wrk did not finish"
    logs = hop.logs()
    failures = [line for line in logs.splitlines() if HOP_FAILURES.search(line)]
    statuses = {int(s): n for s, n in result["statuses"].items()}
    figure("requests under sustained mixed load with a reload", f"{result['requests']} in {SECONDS} s")
    assert not failures, f"{len(failures)} failures of the hop in nginx's error log, e.g.:\n" + "\n".join(
        failures[:5])
    # Every shape answered as only a working path answers it, some of each.
    assert set(statuses) == {200, 405}, f"statuses: {statuses}"
    assert statuses[405] > 1000 and statuses[200] > 1000, statuses
    assert result["requests"] > 5000, result
    assert not any(result[kind] for kind in ("connect", "read", "write", "timeout")), result
    assert not re.search(r'" 5\d\d ', logs), "a 5xx in the access log"
