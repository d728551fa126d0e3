"""Where a full run's time went: python tests/timings.py REPORTS

REPORTS is the folder tests/run.sh fills during a full run: phases.tsv (one
line per phase: name, seconds, exit code) and each phase's JUnit XML
(NAME.xml). Prints each phase's time and counts, the 15 slowest tests of
all phases (setup, call and teardown: a session fixture's build counts in
the first test that asked for it), and a closing line counting every
phase's tests, so that the budget stays in sight."""

from __future__ import annotations

import collections
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

SLOWEST = 15


@dataclass
class Case:
    phase: str
    name: str
    seconds: float
    outcome: str  # passed, failed or skipped


def cases(phase: str, xml: Path) -> list[Case]:
    found = []
    for case in ET.parse(xml).iter("testcase"):
        # tests.test_x, or tests.test_x.TestClass for a class's tests.
        parts = case.get("classname", "").split(".")
        end = next((i + 1 for i, part in enumerate(parts) if part.startswith(("test_", "arch_"))), len(parts))
        path = "::".join(["/".join(parts[:end]) + ".py", *parts[end:]])
        children = {child.tag for child in case}
        outcome = ("failed" if children & {"failure", "error"} else
                   "skipped" if "skipped" in children else "passed")
        found.append(Case(phase, f"{path}::{case.get('name')}", float(case.get("time", 0)), outcome))
    return found


def main(reports: Path) -> None:
    phases = [line.split("\t") for line in (reports / "phases.tsv").read_text().splitlines() if line]
    every: list[Case] = []
    print("\n== phases (tests/run.sh) ==")
    print(f"{'phase':<28}{'seconds':>8}{'tests':>7}{'failed':>8}  exit")
    for name, seconds, status in phases:
        xml = reports / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}.xml"
        found = cases(name, xml) if xml.exists() else []
        every += found
        failed = sum(case.outcome == "failed" for case in found)
        counts = f"{len(found):>7}{failed:>8}" if xml.exists() else f"{'':>15}"
        print(f"{name:<28}{seconds:>8}{counts}  {status}")
    print(f"\n== the {SLOWEST} slowest tests of all phases (setup + call + teardown) ==")
    for case in sorted(every, key=lambda case: -case.seconds)[:SLOWEST]:
        print(f"{case.seconds:8.1f} s  {case.phase:<22} {case.name}")
    counts = collections.Counter(case.outcome for case in every)
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    print(f"\ntotal: {counts['passed']} passed, {counts['failed']} failed{skipped}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
