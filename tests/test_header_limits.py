"""Whatever request headers nginx lets through, uWSGI takes; whatever uWSGI
could not take, nginx refuses first with a 4xx. Tested at each edge: one
byte under, at, and one byte over the request line and header line limits,
the number of full-size lines, and the number of header lines.

The limits (docs/production.md, "Requests"): the request line and each
header line up to 8192 bytes with their CRLF; together, with the blank line
that ends them, nginx's default of four buffers of 8192 bytes (so four full
8190-byte lines fit), as single-sign-on cookies of near 32 KB need; at most
1000 header lines. Before, three buffers (24 KB); and before that, nginx let
through what uWSGI then failed on: 113 short headers got 502 ("max vec size
reached"), a 15 KB query with three 16 KB headers 500. With four buffers and
no bound on the number of lines, a flood of tiny headers would overflow
uWSGI's 64 KB block (a 502): the image uses four only where nginx has
max_headers (layout.py, HEADER_LINE), as Debian 12's does."""

import json
import re

import pytest

LINE = 8192


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving()


@pytest.fixture(scope="module")
def buffers(server) -> int:
    """nginx's large header buffers in this image: 4 where nginx bounds the
    number of header lines (Debian 12's does), else 3."""
    conf = server.exec("cat", "/tmp/flaskbox/nginx/nginx.conf").stdout
    return int(re.search(r"large_client_header_buffers (\d+) 8k;", conf).group(1))


def request(path: str = "/headers", headers: list[bytes] = ()) -> bytes:
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            + b"".join(line + b"\r\n" for line in headers) + b"\r\n")


def answer(server, data: bytes) -> tuple[int, bytes]:
    raw = server.raw(data)
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1]), raw.partition(b"\r\n\r\n")[2]


def header_line(total: int, name: bytes = b"X-Big") -> bytes:
    """A header line of `total` bytes on the wire, CRLF included."""
    return name + b": " + b"v" * (total - len(name) - 4)


def uwsgi_took_everything(server):
    """uWSGI's own complaints about requests too big for it."""
    for complaint in ("max vec size", "too big", "invalid request", "unable to add"):
        assert complaint not in server.logs(), complaint


@pytest.mark.parametrize("size, expected", [(LINE - 1, 200), (LINE, 200), (LINE + 1, 414)])
def test_request_line_edge(server, size, expected):
    query = "q=" + "x" * (size - len("GET /headers? HTTP/1.1\r\n") - 2)
    line = f"GET /headers?{query} HTTP/1.1\r\n"
    assert len(line) == size
    status, _ = answer(server, request(f"/headers?{query}"))
    assert status == expected


@pytest.mark.parametrize("size, expected", [(LINE - 1, 200), (LINE, 200), (LINE + 1, 400)])
def test_header_line_edge(server, size, expected):
    line = header_line(size)
    status, body = answer(server, request(headers=[line]))
    assert status == expected
    if status == 200:
        # The whole value reached the app.
        assert json.loads(body)["x-big"] == size - len(b"X-Big: \r\n")


def test_the_header_takes_nginxs_default_where_nginx_counts_lines(server, buffers):
    # Debian 12's nginx has max_headers; an nginx without it keeps three.
    counts = server.exec("test", "-f", "/etc/flaskbox/nginx-max-headers").returncode == 0
    probe = ("printf 'pid /tmp/mh.pid;\\nevents {}\\nhttp { max_headers 10; }\\n' > /tmp/mh.conf"
             " && nginx -e stderr -t -q -c /tmp/mh.conf")
    assert counts == (server.exec("sh", "-c", probe).returncode == 0)
    assert buffers == (4 if counts else 3)
    rendered = server.exec("cat", "/tmp/flaskbox/nginx/header-count.conf").stdout
    assert ("max_headers 1000;" in rendered) == counts


@pytest.mark.parametrize("more, size, expected", [(-1, LINE, 200), (0, LINE - 3, 200), (0, LINE - 2, 200),
                                                  (0, LINE - 1, 400), (1, 6000, 400)])
def test_header_total_edge(server, buffers, more, size, expected):
    # Four buffers hold the lines and the blank line after them: four
    # lines of 8190 bytes fit, of 8191 do not.
    lines = buffers + more
    headers = [header_line(size, b"X-Big-%d" % i) for i in range(lines)]
    status, body = answer(server, request(headers=headers))
    assert status == expected
    if status == 200:
        seen = json.loads(body)
        assert [seen[f"x-big-{i}"] for i in range(lines)] == [size - len("X-Big-0: \r\n")] * lines


def test_many_short_headers_reach_the_app_or_get_a_4xx(server):
    # The most header lines nginx takes, then one more: each is either served
    # whole or refused by nginx, never a 5xx from uWSGI.
    low, high = 100, 7000
    while low < high:  # the largest count served
        middle = (low + high + 1) // 2
        status, _ = answer(server, request(headers=[b"h%x:" % i for i in range(middle)]))
        assert status in (200, 400), status
        low, high = (middle, high) if status == 200 else (low, middle - 1)
    status, body = answer(server, request(headers=[b"h%x:" % i for i in range(low)]))
    assert status == 200 and sum(1 for name in json.loads(body) if re.fullmatch("h[0-9a-f]+", name)) == low
    assert answer(server, request(headers=[b"h%x:" % i for i in range(low + 1)]))[0] == 400
    # 113 short headers, the count that used to get 502, is well inside.
    assert low > 113
    uwsgi_took_everything(server)


def test_the_old_500_case_is_a_4xx(server, buffers):
    # A 15 KB query with three 16 KB headers: uWSGI's 64 KB limit would be
    # passed, so nginx refuses it.
    query = "q=" + "x" * 15_000
    big = [header_line(16_000, b"X-%d" % i) for i in range(3)]
    status, _ = answer(server, request(f"/headers?{query}", big))
    assert 400 <= status < 500
    # A full request line takes a buffer of its own: with three long header
    # lines more it is served, with four refused.
    query = "q=" + "x" * (LINE - len("GET /headers? HTTP/1.1\r\n") - 2)
    for lines, expected in ((buffers - 1, 200), (buffers, 400)):
        headers = [header_line(8000, b"X-%d" % i) for i in range(lines)]
        assert answer(server, request(f"/headers?{query}", headers))[0] == expected
    uwsgi_took_everything(server)


def test_32_kb_of_cookies_reach_the_app(server, buffers):
    # An SSO session of near 32 KB in cookie chunks of 4 KB, on four Cookie
    # lines (a line is at most 8 KB, as nginx's default). nginx joins them
    # with "; ": uWSGI's ", " would leave Werkzeug no cookie at all.
    chunks = [b"Cookie: " + b"; ".join(b"sso.%d=" % (2 * line + half) + b"c" * 3990 for half in (0, 1))
              for line in range(4)]
    assert sum(len(line) + 2 for line in chunks) > 32_000
    status, body = answer(server, request("/cookies", chunks))
    if buffers == 3:  # an nginx without max_headers: 24 KB in all
        assert status == 400
        return
    assert status == 200
    assert json.loads(body) == {f"sso.{i}": 3990 for i in range(8)}
    uwsgi_took_everything(server)


def test_a_flood_of_tiny_headers_gets_a_4xx(server):
    # The most variables 33 KB of header can make in uWSGI: distinct names
    # of one to three characters, the shortest lines there are. Without a
    # bound on the lines, ~6700 of them overflow uWSGI's block (a 502).
    names = [bytes([a]) for a in b"abcdefghijklmnopqrstuvwxyz0123456789"]
    names += [a + b for a in names for b in names]
    names += [a + b for a in names[:36] for b in names[36:]]
    flood, size = [], 0
    for name in names:
        if size + len(name) + 3 > 4 * LINE:
            break
        flood.append(name + b":")
        size += len(name) + 3
    status, _ = answer(server, request(headers=flood))
    assert 400 <= status < 500
    uwsgi_took_everything(server)
