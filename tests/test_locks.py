"""The locks the Dockerfile installs from with --require-hashes say what the
pins say: every pinned package at its pinned version, each with the sha256
of its files. deploy/lock.sh regenerates them; a pin changed without it is
caught here (and by the build)."""

import re

import pytest

from helpers import REPO

# pins -> the lock made from them (deploy/lock.sh).
LOCKS = {
    "requirements.txt": "requirements.lock",
    "lib/gevent-requirements.txt": "lib/gevent-requirements.lock",
    "lib/sbom/requirements.txt": "lib/sbom/requirements.lock",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: str) -> dict[str, str]:
    found = {}
    for line in (REPO / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path}: {line!r} is not pinned with =="
            found[canonical(name)] = version.strip()
    return found


def locked(path: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes), from a pip requirements file
    with one `name==version [; marker] \\` line per package and its
    `--hash=sha256:...` lines."""
    entries, current = {}, None
    for line in (REPO / path).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line):
            current = canonical(match.group(1))
            entries[current] = (match.group(2), 0)
        elif match := re.match(r"^\s+--hash=sha256:[0-9a-f]{64}", line):
            version, count = entries[current]
            entries[current] = (version, count + 1)
    return entries


@pytest.mark.parametrize("pins_file, lock_file", LOCKS.items())
def test_the_lock_says_what_the_pins_say(pins_file, lock_file):
    lock = locked(lock_file)
    assert {name: lock.get(name, (None,))[0] for name in pins(pins_file)} == pins(pins_file), \
        f"{lock_file} is out of date: run deploy/lock.sh"
    unhashed = [name for name, (_, count) in lock.items() if count == 0]
    assert unhashed == [], unhashed

