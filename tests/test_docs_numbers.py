"""Numbers the docs and comments quote about the code stay true to it (no
container): exit codes the container is said to exit with, and the uWSGI
pool (processes per CPU, threads per process) the defaults are said to be.
Both drifted once: swarm.md promised code 22 after the start had moved to 2,
and the Kubernetes deployment's comment kept "1 process x 2 threads per CPU"
after the default became 2 processes per CPU x 16 threads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fake_host import FakeHost
from flaskbox import layout, settings
from helpers import REPO

# --- exit codes ----------------------------------------------------------------

# Where the container's own exit codes come from.
CODE = ["entry-point.sh", "healthcheck.sh", "lib/*.sh", "lib/bin/*", "lib/flaskbox/*.py",
        "lib/flaskbox/*/*.py"]
EXITS_IN_CODE = [r"\bexit (\d+)\b", r"\bsys\.exit\((\d+)\)", r"\bos\._exit\((\d+)\)", r"\bcode=(\d+)\b"]
# What the docs say the container (or one of its commands) exits with.
QUOTES = [
    r"\bexit(?:s|ed|ing)?\b[^.;()\d]{0,25}?\b(?:code|status) (\d+)(?![\d.])",
    r"\bexit code (\d+)(?![\d.])",
    r"\bexits? (\d+)(?![\d.]| s\b| ms\b)",
    r"退出码 ?(\d+)",
]
# Codes docs may quote that are another program's, with the word that says whose.
OTHER_PROGRAMS = {18: "curl", 137: "SIGKILL", 143: "SIGTERM"}


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


# The container's exit codes, each named once (layout.py); the Python exits
# with the names, the bash with numbers.
NAMED = set(layout.EXIT_CODES) | set(layout.STOPPED_STARTING)
# A number that is another command's: lib/bin/flask finding no flask to run
# (127, as a shell says "command not found").
COMMANDS_OWN = {127}


def literal_codes() -> set[int]:
    found = set()
    for path in tracked(*CODE):
        text = path.read_text()
        for pattern in EXITS_IN_CODE:
            found |= {int(code) for code in re.findall(pattern, text)}
    return found


def codes_in_code() -> set[int]:
    return NAMED | literal_codes()


def docs() -> list[Path]:
    return tracked("README*.md", "docs/*.md", "docs/zh-CN/*.md")


def quoted_codes(text: str) -> list[tuple[int, str]]:
    """(code, the words around it) for every exit code a text quotes, also
    where a line break splits the quote ("exits at once with\ncode 22")."""
    text = re.sub(r"\s*\n\s*", " ", text)
    found = []
    for pattern in QUOTES:
        for match in re.finditer(pattern, text):
            found.append((int(match.group(1)), text[max(0, match.start() - 80):match.end() + 20]))
    return found


def test_the_docs_quote_exit_codes():
    """The patterns find what they are for (a test that finds nothing proves nothing)."""
    quotes = [code for path in docs() for code, _ in quoted_codes(path.read_text())]
    assert quotes.count(2) > 20 and 0 in quotes, quotes
    assert [code for code, _ in quoted_codes("an app that cannot be imported exits at once with\ncode 22")] \
        == [22]
    assert [code for code, _ in quoted_codes("以退出码 22 退出")] == [22]
    assert quoted_codes("exit 0.20 s after the last answer") == []


@pytest.mark.parametrize("page", docs(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_exit_code_a_page_quotes_is_one_the_code_has(page):
    known = codes_in_code()
    wrong = [f"exit code {code} is not one the code exits with: ...{words}..."
             for code, words in quoted_codes(page.read_text())
             if code not in known and not (code in OTHER_PROGRAMS and OTHER_PROGRAMS[code] in words)]
    assert not wrong, wrong


def test_the_exit_codes_found_in_the_code_are_the_real_ones():
    # The patterns find the bash's numbers (a test that finds nothing proves nothing).
    literal = literal_codes()
    assert {0, 1, 2, 143} <= literal, literal
    # Every number the code exits with is one layout.py names.
    assert literal - COMMANDS_OWN <= NAMED, literal - COMMANDS_OWN - NAMED


# The README's table of exit codes, in each language: its heading.
EXIT_TABLES = {"README.md": "## Exit codes", "README.zh-CN.md": "## 退出码"}


def table_codes(page: str) -> tuple[set[int], list[str]]:
    """The codes a README's exit-code table lists (its first column's
    numbers), and that column's cells."""
    section = (REPO / page).read_text().split(f"\n{EXIT_TABLES[page]}\n", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1].strip() for line in section.splitlines()
             if line.startswith("|") and not line.startswith("| ---")][1:]
    return {int(code) for cell in cells for code in re.findall(r"`(\d+)`", cell)}, cells


@pytest.mark.parametrize("page", EXIT_TABLES)
def test_the_readmes_exit_code_table_is_layouts(page):
    codes, cells = table_codes(page)
    assert codes == NAMED, (f"in the table, not in layout.py: {sorted(codes - NAMED)}; "
                            f"in layout.py, not in the table: {sorted(NAMED - codes)}")
    # A server killed by signal N: layout.SIGNALLED + N.
    assert f"{layout.SIGNALLED} + N" in cells, cells


# --- the uWSGI pool ------------------------------------------------------------

def default_pool(cpus: int) -> tuple[int, int]:
    """(processes, threads) the settings give a container with `cpus` CPUs."""
    values = settings.resolve("production", {}, FakeHost(cpus=cpus)).values
    return int(values["UWSGI_PROCESSES"]), int(values["UWSGI_THREADS"])


# Per CPU where neither the floor (a container of 1 CPU) nor the cap (a big
# host) applies.
PER_CPU = default_pool(8)[0] // 8
THREADS = default_pool(8)[1]
WORDS = {"one": 1, "two": 2, "一": 1, "两": 2, "二": 2}
NUMBER = r"(\d+|one|two|一|两|二)"
# Statements about the pool, each with what it must equal.
POOL_CLAIMS = [
    # "1 process per CPU x 32 threads", "1 process x 2 threads per CPU",
    # "uWSGI 2 processes x up to 32 threads" (the log's line)
    (rf"\b{NUMBER} (?:uWSGI |worker )*process(?:es)? ?(?:per CPU )?(?:x|×) ?(?:up to )?{NUMBER} threads?"
     r"( per CPU)?", "pool"),
    (rf"{NUMBER} ?个(?: ?uWSGI ?| ?worker ?)?进程 ?(?:x|×) ?{NUMBER} ?个线程()", "pool"),
    (rf"\b{NUMBER} (?:uWSGI |worker )*process(?:es)? per CPU", "per_cpu"),
    (rf"每个 ?CPU ?{NUMBER} ?个(?: ?worker ?| ?uWSGI ?)?进程", "per_cpu"),
    (rf"\b{NUMBER} threads (?:per|in each|each) (?:uWSGI )?process", "threads"),
    (rf"每个(?: uWSGI )?进程 ?{NUMBER} ?个线程", "threads"),
]
# The CPUs a line sizes its pool for: "on 2 CPUs", "2 CPU(s) available",
# "1 CPU gives", "2 个 CPU".
CPUS = re.compile(rf"\b{NUMBER} CPU(?:s|\(s\))?\b|{NUMBER} ?个 ?CPU")
# Pages that quote other pools on purpose: the benchmarks, whose shapes
# compared with the default and whose sections measured on an earlier
# default (each says which) name other pools.
HISTORY = {"docs/BENCHMARKS.md"}
# A line that sets the pool itself, or names one for comparison.
OTHER_POOL = re.compile(r"UWSGI_(?:PROCESSES|THREADS)=|gevent|instead of|previous|before|was\b|以前|之前")


def number(word: str) -> int:
    return WORDS.get(word) or int(word)


def pool_texts() -> list[Path]:
    paths = tracked("README*.md", "docs/*.md", "docs/zh-CN/*.md", "deploy/**", "*.ini", "*.conf",
                    "Dockerfile", "compose.yaml", "entry-point.sh", "lib/**")
    return [path for path in paths if str(path.relative_to(REPO)) not in HISTORY
            and path.suffix in {".md", ".yaml", ".yml", ".ini", ".conf", ".sh", ".py", ""}]


def right_pool(match: re.Match, line: str) -> bool:
    """Whether a stated pool is the default: per CPU, the default's per
    CPU; for the CPUs the line names, the default for those; else a whole
    number of CPUs' worth, at least the floor."""
    processes, threads = number(match.group(1)), number(match.group(2))
    if threads != THREADS:
        return False
    if match.group(3) or "per CPU x" in match.group(0) or re.search(r"每个 ?CPU ?$", line[:match.start()]):
        return processes == PER_CPU
    cpus = {number(found[0] or found[1]) for found in CPUS.findall(line)}
    if cpus:
        return any(processes == default_pool(count)[0] for count in cpus)
    return processes % PER_CPU == 0 and processes >= default_pool(1)[0]


def wrong_pool_claims(text: str) -> list[str]:
    wrong = []
    for line in text.splitlines():
        if OTHER_POOL.search(line):
            continue
        for pattern, kind in POOL_CLAIMS:
            for match in re.finditer(pattern, line):
                if kind == "per_cpu":
                    ok = number(match.group(1)) == PER_CPU
                elif kind == "threads":
                    ok = number(match.group(1)) == THREADS
                else:
                    ok = right_pool(match, line)
                if not ok:
                    wrong.append(f"{match.group(0)!r} in: {line.strip()}")
    return wrong


def test_the_pool_claims_are_found():
    assert (PER_CPU, THREADS, default_pool(1)[0], default_pool(2)[0]) == (1, 32, 2, 2)
    assert wrong_pool_claims("# The entry-point sizes uWSGI (1 process x 2 threads per CPU) and") != []
    assert wrong_pool_claims("uWSGI 4 processes x 1 threads, nginx 2 workers") != []
    assert wrong_pool_claims("每个 CPU 2 个进程") != []
    assert wrong_pool_claims("the default pool (1 process per CPU x 32 threads) and") == []
    assert wrong_pool_claims("2 processes × 32 threads on 2 CPUs") == []
    assert wrong_pool_claims("2 processes × 16 threads on 2 CPUs") != []
    assert wrong_pool_claims("4 processes × 32 threads on 2 CPUs") != []
    assert wrong_pool_claims("flaskbox: 2 CPU(s) available: uWSGI 4 processes x up to 32 threads") != []
    assert wrong_pool_claims("1 个 CPU 对应 2 个 uWSGI 进程 × 32 个线程") == []
    assert wrong_pool_claims("每个 CPU 2 个进程 × 32 个线程") != []
    assert wrong_pool_claims("每个 uWSGI 进程 16 个线程") != []
    found = [line for path in pool_texts() for line in path.read_text().splitlines()
             if any(re.search(pattern, line) for pattern, _ in POOL_CLAIMS)]
    assert len(found) >= 10, found


@pytest.mark.parametrize("path", pool_texts(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_pool_a_text_states_is_the_default(path):
    assert not wrong_pool_claims(path.read_text()), wrong_pool_claims(path.read_text())
