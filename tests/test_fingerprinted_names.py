"""Which names nginx keeps for good without a manifest: nginx-static.conf's
one regular expression, asked here without a container (Python's re reads
its lookaheads and classes as nginx's PCRE does), against the names today's
bundlers really write (tests/bundler_names.py: Vite, Rollup, esbuild,
webpack, Parcel, Angular's two builders) and names of files that change in
place, which stay revalidated. tests/test_static_caching.py proves the
header nginx sends."""

from __future__ import annotations

import re

import pytest

from bundler_names import KEPT, NOT_FINGERPRINTED, REVALIDATED_HASHES
from helpers import REPO

TEMPLATE = (REPO / "nginx-static.conf").read_text()
# The static location's regular-expression locations: the dotfiles' refusal,
# then the fingerprinted names'.
LOCATIONS = re.findall(r'^    location ~ "?(.+?)"? \{\n(.*?)^    \}\n', TEMPLATE, re.M | re.S)
PATTERN = LOCATIONS[-1][0]


def kept(name: str) -> bool:
    return re.search(PATTERN, f"/static/{name}") is not None


def test_one_expression_decides_and_keeps_for_good():
    # One compiled expression a request, after the dotfiles' (first: nginx
    # tries them in order).
    assert [pattern for pattern, _ in LOCATIONS] == [r"/\.(?!well-known(?:/|$))", PATTERN]
    assert "expires max;" in LOCATIONS[-1][1]


@pytest.mark.parametrize("bundler", list(KEPT))
def test_every_bundler_s_real_names_are_kept_for_good(bundler):
    assert [name for name in KEPT[bundler] if not kept(name)] == []
    # Wherever the folder puts them.
    assert all(kept(f"ui/dist/{name}") for name in KEPT[bundler])


def test_files_changed_in_place_are_revalidated():
    assert [name for name in NOT_FINGERPRINTED if kept(name)] == []
    assert [name for name in NOT_FINGERPRINTED if kept(f"vendor/{name}")] == []


def test_a_hash_that_reads_as_a_word_or_a_number_is_revalidated():
    # The rule's price: real hashes with a run a word or a number has.
    assert [name for name in REVALIDATED_HASHES if kept(name)] == []


@pytest.mark.parametrize("name, forever", [
    ("app.3f2a9c1b.css", True), ("assets/spa.4cd1e2bb.entry.js", True),
    ("assets/7f3a9c1be02d4e55.chunk.js", True), ("vendor.0a1b2c3d4e.bundle.js", True),
    # Django's ManifestStaticFilesStorage: 12 hex digits.
    ("css/base.55e7cbb9ba48.css", True),
    # The examples: esbuild's and Vite's, a dash within Vite's hash.
    ("main-6BOTAYD6.js", True), ("chunk-XHKWLJ5F.js", True), ("index-BxL2Kd9_.js", True),
    ("index-D4c5N-Qa.css", True),
    # Only just before the extension, only of the bundler's length.
    ("main-6BOTAYD6.min.js", False), ("main-6BOTAYD6X.js", False), ("index-BxL2Kd9.js", False),
    ("6BOTAYD6-main.js", False), ("main.6BOTAYD6.js", False), ("e2281c4a428e8b98244.png", False),
    # esbuild's base32 has no 0, 1, 8 or 9 (a year has): not esbuild's.
    ("report-FY2024Q3.pdf", False), ("main-6BOTAYD8.js", False),
    # All digits: a date or a count, in any alphabet.
    ("report.20240115.css", False), ("build-23456723.js", False)])
def test_the_shape_of_each_alphabet(name, forever):
    assert kept(name) == forever
