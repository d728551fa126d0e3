"""Ranges are bounded: nginx answers at most 8 ranges of a static file in
one multipart answer, which is never more than the file plus ~0.7 KB of part
headers; more ranges, or ranges that together ask more than the file has
(overlapping ones), get the whole file once (200), as RFC 9110 14.2 allows.
Ranges out of the file's order come back in the order asked, each part the
file's own bytes. (Before: 100 one-byte ranges gave an answer 45 times a
small file.)"""

import os
import re

import pytest

from helpers import share_with_container

SMALL = 200  # bytes: the amplification case's small file
LARGER = 4000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranges")
    contents = {"small.bin": os.urandom(SMALL), "larger.bin": os.urandom(LARGER)}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    share_with_container(folder)
    folder.parent.chmod(0o755)
    return folder, contents


@pytest.fixture(scope="module")
def served(module_containers, files):
    folder, _ = files
    return module_containers.serving(env={"STATIC_URL": "/files", "STATIC_PATH": "/srv/files"},
                                     docker_args=("-v", f"{folder}:/srv/files:ro"))


def ranged(served, name: str, spec: str):
    return served.request(f"/files/{name}", headers={"Range": f"bytes={spec}"})


def parts(resp) -> list[tuple[int, int, bytes]]:
    """(first, last, bytes) of each part of a multipart/byteranges answer."""
    boundary = re.search(r"boundary=(\S+)", resp.headers["content-type"]).group(1).encode()
    found = []
    for chunk in resp.body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, _, data = chunk.partition(b"\r\n\r\n")
        first, last = map(int, re.search(rb"Content-Range: bytes (\d+)-(\d+)/\d+", head).groups())
        found.append((first, last, data[:-2] if data.endswith(b"\r\n") else data))
    return found


def test_many_small_ranges_get_the_file_once(served, files, figure):
    _, contents = files
    data = contents["small.bin"]
    spec = ",".join(f"{2 * i}-{2 * i}" for i in range(100))
    resp = ranged(served, "small.bin", spec)
    # Before: a 206 of 100 parts, 45 times the file.
    assert resp.status == 200 and resp.body == data, (resp.status, len(resp.body))
    # Up to 8 ranges are still answered in parts; 9 are not.
    eight = ranged(served, "small.bin", ",".join(f"{2 * i}-{2 * i}" for i in range(8)))
    assert eight.status == 206 and [(first, last) for first, last, _ in parts(eight)] == \
        [(2 * i, 2 * i) for i in range(8)]
    assert len(eight.body) <= SMALL + 700, len(eight.body)
    nine = ranged(served, "small.bin", ",".join(f"{2 * i}-{2 * i}" for i in range(9)))
    assert nine.status == 200 and nine.body == data
    figure("a 200-byte file: 100 one-byte ranges, 8, 9 -> bytes sent",
           f"{len(resp.body)} (200), {len(eight.body)} (206), {len(nine.body)} (200)")


def test_overlapping_ranges_that_ask_more_than_the_file_get_it_once(served, files):
    _, contents = files
    data = contents["larger.bin"]
    resp = ranged(served, "larger.bin", "0-2999,1000-3999")
    assert resp.status == 200 and resp.body == data, (resp.status, len(resp.body))
    resp = ranged(served, "larger.bin", "0-,0-,0-")
    assert resp.status == 200 and resp.body == data


def test_overlapping_ranges_within_the_file_are_its_own_bytes(served, files):
    _, contents = files
    data = contents["larger.bin"]
    resp = ranged(served, "larger.bin", "0-99,50-149,100-199")
    assert resp.status == 206, resp.status
    got = parts(resp)
    assert [(first, last) for first, last, _ in got] == [(0, 99), (50, 149), (100, 199)]
    assert all(body == data[first:last + 1] for first, last, body in got)


def test_ranges_out_of_order_come_back_in_the_order_asked(served, files):
    _, contents = files
    data = contents["larger.bin"]
    resp = ranged(served, "larger.bin", "3000-3099,-10,0-9,1500-1509")
    assert resp.status == 206, resp.status
    got = parts(resp)
    assert [(first, last) for first, last, _ in got] == [(3000, 3099), (3990, 3999), (0, 9), (1500, 1509)]
    assert all(body == data[first:last + 1] for first, last, body in got)
    # One range: a plain 206, no parts.
    one = ranged(served, "larger.bin", "10-19")
    assert one.status == 206 and one.body == data[10:20]
    assert one.headers["content-range"] == f"bytes 10-19/{LARGER}"
