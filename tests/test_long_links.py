"""Long links, as real apps send them, are admitted by default: Superset's
explore links carry the chart's state in the query (16 KB), and its answer
to a visitor not signed in, a redirect to /login/?next=<the link>, echoes
all of it in a header. Past MAX_LINE_SIZE a link gets 414 and a header
line 400, each logged naming the setting; the setting admits longer ones.
An app whose own answer has more header than nginx takes (a mistake of
its own, cookies by the dozen) gets no bare 502: the log names the cause;
past what uWSGI can pass on whole, the wrapper answers 500 and says so.
Driven with requests, as a browser would follow the redirect.
(tests/apps/dashboards; the edges themselves: test_header_limits.py.)"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest
import requests

from containers import ContainerFactory
from helpers import docker

# The state of a chart, as Superset puts it in an explore link.
FORM_DATA = {"datasource": "7__table", "viz_type": "echarts_timeseries_bar",
             "metrics": [{"label": f"SUM(metric_{n})", "sqlExpression": f"SUM(metric_{n})"}
                         for n in range(140)]}


def link(port: int, size: int) -> str:
    """An explore link whose request line (GET ... HTTP/1.1) is `size` bytes."""
    state = json.dumps(FORM_DATA)
    while len(urllib.parse.quote(state)) < size:
        state += " "
    head = f"http://127.0.0.1:{port}"
    path = "/explore/?form_data="
    room = size - len(f"GET {path} HTTP/1.1\r\n")
    query = urllib.parse.quote(state)[:room]
    # Cut at a whole escape (a client would re-escape a broken one).
    cut = re.search(r"%[0-9A-F]?$", query)
    if cut:
        query = query[:cut.start()] + "x" * len(cut.group())
    return head + path + query


@pytest.fixture(scope="module")
def dashboards(app_images):
    return app_images("dashboards")


@pytest.fixture(scope="module")
def served(dashboards):
    """serve(**env) -> a running container of the app, one per env for the
    whole module (its tests only send it requests)."""
    factory = ContainerFactory(dashboards)
    running = {}

    def serve(**env):
        key = tuple(sorted(env.items()))
        if key not in running:
            running[key] = factory.run(env=env)
            running[key].wait_http("/login/")
        return running[key]

    yield serve
    factory.cleanup()


def access_lines(container) -> list[str]:
    return docker("logs", container.name).stdout.splitlines()


def test_a_16_kb_link_reaches_the_app_and_its_redirect_comes_back_whole(served):
    c = served()
    url = link(c.port, 16_121)
    # Not signed in: the app's redirect echoes the whole link (17 KB of header).
    first = requests.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == 302, first.text[:300]
    target = first.headers["Location"]
    assert target.startswith("/login/?next=http") and len(target) > 15_000
    followed = requests.get(url, timeout=10)
    assert followed.status_code == 200 and followed.json()["next"] > 10_000  # the link, decoded
    # Signed in: the app reads the whole state.
    signed = requests.get(url, cookies={"session_user": "ada"}, timeout=10)
    assert signed.status_code == 200
    query = urllib.parse.urlsplit(url).query
    assert signed.json() == {"form_data": len(urllib.parse.parse_qs(query)["form_data"][0]), "user": "ada"}


def test_past_the_setting_a_link_gets_414_and_the_log_names_it(served):
    c = served()
    # Asked for by name, the internal location is a 404, and names no limit.
    assert requests.get(f"http://127.0.0.1:{c.port}/-/line-too-long", timeout=10).status_code == 404
    refused = requests.get(link(c.port, 16 * 1024 + 1), timeout=10)
    assert refused.status_code == 414
    c.wait_until(lambda: any(re.search(r'" 414 .*limit=MAX_LINE_SIZE$', line) for line in access_lines(c)),
                 "the 414's log line naming MAX_LINE_SIZE")
    # (Each nginx worker writes its own lines within a second: the 404's
    # may come after the 414's.)
    c.wait_until(lambda: [line for line in access_lines(c) if '"GET /-/line-too-long HTTP/1.1" 404' in line],
                 "the asked-for 404's log line")
    asked = [line for line in access_lines(c) if '"GET /-/line-too-long HTTP/1.1" 404' in line]
    assert len(asked) == 1 and "limit=" not in asked[0], asked
    # One large header the same: a 20 KB JWT.
    jwt = {"Authorization": "Bearer " + "j" * 20_000}
    token = requests.get(f"http://127.0.0.1:{c.port}/login/", headers=jwt, timeout=10)
    assert token.status_code == 400
    c.wait_until(lambda: any(re.search(r'" 400 .*limit=MAX_LINE_SIZE$', line) for line in access_lines(c)),
                 "the 400's log line naming MAX_LINE_SIZE")
    assert "[error]" not in c.logs()


def test_the_setting_admits_longer_links(served):
    c = served(MAX_LINE_SIZE="24k")
    url = link(c.port, 22_000)
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 302
    assert requests.get(url, cookies={"session_user": "ada"}, timeout=10).status_code == 200
    jwt = {"Authorization": "Bearer " + "j" * 20_000}
    assert requests.get(f"http://127.0.0.1:{c.port}/login/", headers=jwt, timeout=10).status_code == 200
    assert requests.get(link(c.port, 24 * 1024 + 1), timeout=10).status_code == 414


def test_an_answer_with_more_header_than_nginx_takes_is_no_bare_502(served):
    # 56 KB of the app's own cookies, past the 48 KB buffer for an answer's
    # header: the app's mistake, a 500, and the log names the cause and the
    # setting that sizes the buffer.
    c = served()
    resp = requests.get(f"http://127.0.0.1:{c.port}/huge-cookie/56", timeout=10)
    assert resp.status_code == 500
    c.wait_until(lambda: any(re.search(r'"GET /huge-cookie/56 HTTP/1.1" 500 .*limit=MAX_LINE_SIZE$', line)
                             for line in access_lines(c)), "the 500 logged naming MAX_LINE_SIZE")
    assert "upstream sent too big header" in c.logs()
    # 40 KB fits (a redirect echoing a 16 KB link twice over would).
    assert requests.get(f"http://127.0.0.1:{c.port}/huge-cookie/40", timeout=10).status_code == 200


@pytest.mark.parametrize("size", [61_500, 65536, 100_000])
def test_an_answer_with_more_header_than_uwsgi_takes_is_a_500_logged_for_what_it_is(served, size):
    # Past 64 KB uWSGI dropped the answer (nginx: 502) and the log blamed an
    # exception of the app's; at 64 KB and beyond, a header's length wrapped
    # and it went out cut, logged as whole.
    c = served()
    resp = requests.get(f"http://127.0.0.1:{c.port}/huge-header/{size}", timeout=10)
    assert (resp.status_code, resp.text, "X-State" in resp.headers) == (500, "Internal Server Error\n", False)
    c.wait_until(lambda: any(f'"GET /huge-header/{size} HTTP/1.1" 500 ' in line for line in access_lines(c)),
                 "the 500 in the access log")
    logs = c.logs()
    said = re.search(rf"GET /huge-header/{size}: the app's answer has a (\d+)-byte head, more than "
                     r"uWSGI can pass on whole \(\d+\): answered 500", logs)
    assert said and size < int(said.group(1)) < size + 100, logs
    assert "unable to add header" not in logs and "passed TypeError on" not in logs, logs


def test_an_answer_header_nginx_takes_arrives_whole(served):
    c = served()
    resp = requests.get(f"http://127.0.0.1:{c.port}/huge-header/40000", timeout=10)
    assert (resp.status_code, resp.headers["X-State"]) == (200, "s" * 40000)
