"""Whatever request headers nginx lets through, uWSGI takes; whatever uWSGI
could not take, nginx refuses first with a 4xx. Tested at each edge: one
byte under, at, and one byte over the request line and header line limits,
the number of full-size lines, and the number of header lines.

The limits (docs/configuration.md, "Long URLs and large headers"): the
request line and each header line up to MAX_LINE_SIZE with their CRLF (16
KB: real apps' long links), longer refused with the setting named in the
log; together, with the blank line that ends them, as many such buffers as
keep uWSGI's 64 KB block safe (2 x 16 KB: the same 33 KB as nginx's default
4 x 8 KB, as single-sign-on cookies of near 32 KB need); at most 1000
header lines. Before, nginx let through what uWSGI then failed on: 113
short headers got 502 ("max vec size reached"), a 15 KB query with three 16
KB headers 500. Without a bound on the number of lines (an nginx without
max_headers), a flood of tiny headers would overflow uWSGI's block (a 502):
fewer buffers there (layout.py, header_buffers)."""

import json
import re

import pytest

from helpers import docker


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving()


@pytest.fixture(scope="module")
def limits(server) -> tuple[int, int]:
    """(large header buffers, their size) of this image's nginx."""
    conf = server.exec("cat", "/tmp/flaskbox/nginx/nginx.conf").stdout
    buffers, line = re.search(r"large_client_header_buffers (\d+) (\d+);", conf).groups()
    return int(buffers), int(line)


@pytest.fixture(scope="module")
def buffers(limits) -> int:
    return limits[0]


@pytest.fixture(scope="module")
def line(limits) -> int:
    return limits[1]


def logged_with_the_setting(server, status: int) -> bool:
    """The refusal's line in the access log names MAX_LINE_SIZE."""
    return any(re.search(rf'" {status} .* limit=MAX_LINE_SIZE$', entry)
               for entry in docker("logs", server.name).stdout.splitlines())


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


@pytest.mark.parametrize("offset, expected", [(-1, 200), (0, 200), (1, 414)])
def test_request_line_edge(server, line, offset, expected):
    size = line + offset
    query = "q=" + "x" * (size - len("GET /headers? HTTP/1.1\r\n") - 2)
    request_line = f"GET /headers?{query} HTTP/1.1\r\n"
    assert len(request_line) == size
    status, _ = answer(server, request(f"/headers?{query}"))
    assert status == expected
    if status == 414:
        server.wait_until(lambda: logged_with_the_setting(server, 414), "the 414 logged naming MAX_LINE_SIZE")


@pytest.mark.parametrize("offset, expected", [(-1, 200), (0, 200), (1, 400)])
def test_header_line_edge(server, line, offset, expected):
    size = line + offset
    status, body = answer(server, request(headers=[header_line(size)]))
    assert status == expected
    if status == 200:
        # The whole value reached the app.
        assert json.loads(body)["x-big"] == size - len(b"X-Big: \r\n")
    else:
        server.wait_until(lambda: logged_with_the_setting(server, 400), "the 400 logged naming MAX_LINE_SIZE")


def test_the_header_takes_the_same_room_where_nginx_counts_lines(server, buffers, line):
    # Debian 12's nginx has max_headers; an nginx without it keeps fewer
    # buffers (layout.header_buffers): 33 KB where it counts, 17 KB if not.
    counts = server.exec("test", "-f", "/etc/flaskbox/nginx-max-headers").returncode == 0
    probe = ("printf 'pid /tmp/mh.pid;\\nevents {}\\nhttp { max_headers 10; }\\n' > /tmp/mh.conf"
             " && nginx -e stderr -t -q -c /tmp/mh.conf")
    assert counts == (server.exec("sh", "-c", probe).returncode == 0)
    assert line == 16 * 1024 and buffers * line == (32 if counts else 16) * 1024
    rendered = server.exec("cat", "/tmp/flaskbox/nginx/header-count.conf").stdout
    assert ("max_headers 1000;" in rendered) == counts


@pytest.mark.parametrize("more, shorter, expected", [(-1, 0, 200), (0, 3, 200), (0, 2, 200), (0, 1, 400),
                                                     (1, None, 400)])
def test_header_total_edge(server, buffers, line, more, shorter, expected):
    # The buffers hold the lines and the blank line after them: as many
    # lines of line - 2 bytes as there are buffers fit, of line - 1 do not;
    # one more line of three quarters of a buffer each does not either.
    lines = buffers + more
    size = line - shorter if shorter is not None else line * 3 // 4
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


def test_the_old_500_case_is_a_4xx(server, buffers, line):
    # A 15 KB query with three 16 KB headers: uWSGI's 64 KB limit would be
    # passed, so nginx refuses it.
    query = "q=" + "x" * 15_000
    big = [header_line(16_000, b"X-%d" % i) for i in range(3)]
    status, _ = answer(server, request(f"/headers?{query}", big))
    assert 400 <= status < 500
    # A full request line takes a buffer of its own: with a nearly full
    # header line in each other buffer it is served, with one more refused.
    query = "q=" + "x" * (line - len("GET /headers? HTTP/1.1\r\n") - 2)
    for lines, expected in ((buffers - 1, 200), (buffers, 400)):
        headers = [header_line(line - 200, b"X-%d" % i) for i in range(lines)]
        assert answer(server, request(f"/headers?{query}", headers))[0] == expected
    uwsgi_took_everything(server)


def test_32_kb_of_cookies_reach_the_app(server, buffers, line):
    # An SSO session of near 32 KB in cookie chunks of 4 KB, on four Cookie
    # lines (a line is at most 8 KB, as nginx's default). nginx joins them
    # with "; ": uWSGI's ", " would leave Werkzeug no cookie at all.
    chunks = [b"Cookie: " + b"; ".join(b"sso.%d=" % (2 * line + half) + b"c" * 3990 for half in (0, 1))
              for line in range(4)]
    assert sum(len(line) + 2 for line in chunks) > 32_000
    status, body = answer(server, request("/cookies", chunks))
    if buffers * line < 32 * 1024:  # an nginx without max_headers: 17 KB in all
        assert status == 400
        return
    assert status == 200
    assert json.loads(body) == {f"sso.{i}": 3990 for i in range(8)}
    uwsgi_took_everything(server)


def test_a_flood_of_tiny_headers_gets_a_4xx(server, buffers, line):
    # The most variables 33 KB of header can make in uWSGI: distinct names
    # of one to three characters, the shortest lines there are. Without a
    # bound on the lines, ~6700 of them overflow uWSGI's block (a 502).
    names = [bytes([a]) for a in b"abcdefghijklmnopqrstuvwxyz0123456789"]
    names += [a + b for a in names for b in names]
    names += [a + b for a in names[:36] for b in names[36:]]
    flood, size = [], 0
    for name in names:
        if size + len(name) + 3 > buffers * line:
            break
        flood.append(name + b":")
        size += len(name) + 3
    status, _ = answer(server, request(headers=flood))
    assert 400 <= status < 500
    uwsgi_took_everything(server)
