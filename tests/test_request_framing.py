"""What held in the hostile-traffic rounds keeps holding, sent as raw bytes:
no request smuggling (a body framed two ways, two lengths, an unknown
transfer coding), pipelined requests answered in order, TRACE refused,
overlapping ranges served once, `Expect: 100-continue` over the limit
refused before the body, no directory listing."""

import re
import socket

import pytest


@pytest.fixture(scope="module")
def server(module_containers):
    return module_containers.serving(env={"MAX_BODY_SIZE": "1k"})


def statuses(answer: bytes) -> list[int]:
    """The status of each response in `answer`, in order."""
    return [int(code) for code in re.findall(rb"(?:^|\n)HTTP/1\.1 ([0-9]{3}) ", answer)]


@pytest.mark.parametrize("request_bytes, expected", [
    # Content-Length and chunked at once: the smuggled GET must not run.
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", [400]),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", [400]),
    # A transfer coding or an HTTP version nginx does not know: the
    # client's mistake, never a 5xx (nginx's own would be 501 and 505).
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", [400]),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", [400]),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", [400]),
    (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", [400]),
    (b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", [405]),
    (b"GET /static/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", [403]),
])
def test_ambiguous_or_refused_requests(server, request_bytes, expected):
    answer = server.raw(request_bytes)
    assert statuses(answer) == expected
    assert "/smuggled" not in server.logs()


def test_pipelined_requests_are_answered_in_order(server):
    answer = server.raw(b"GET /-/alive HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"GET /static/proof.txt HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"GET /missing-page HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert statuses(answer) == [200, 200, 404]
    assert answer.index(b"alive") < answer.index(b"static ")


def test_overlapping_ranges_send_the_file_once(server):
    size = len(server.request("/static/proof.txt").body)
    answer = server.raw(b"GET /static/proof.txt HTTP/1.1\r\nHost: a\r\nRange: bytes="
                        + b",".join([b"0-"] * 50) + b"\r\nConnection: close\r\n\r\n")
    assert statuses(answer) == [200]
    assert len(answer.partition(b"\r\n\r\n")[2]) == size


def test_expect_100_continue_over_the_limit_is_refused_before_the_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        # No body sent: the answer comes anyway, and it is not "100 Continue".
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")
