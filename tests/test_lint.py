"""Linters: shellcheck on every shell script, hadolint on the Dockerfile, ruff."""

import subprocess

from helpers import REPO


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if (REPO / line).exists()]


def shell_scripts() -> list[str]:
    scripts = tracked("*.sh")
    # Scripts named as commands (lib/bin/flask) have no .sh to find them by.
    scripts += [path for path in tracked(".ci/*", "lib/bin/*") if path not in scripts
                and (REPO / path).read_text(errors="replace").startswith("#!/usr/bin/env bash")]
    return scripts


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_there_are_shell_scripts_to_check():
    scripts = shell_scripts()
    assert {"entry-point.sh", ".ci/run", "lib/bin/flask"} <= set(scripts), scripts


def test_shellcheck_is_clean():
    result = run(["shellcheck", "-x", *shell_scripts()])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_clean():
    dockerfiles = tracked("Dockerfile", "*/Dockerfile")
    assert "Dockerfile" in dockerfiles and "bench/Dockerfile" in dockerfiles, dockerfiles
    result = run(["hadolint", *dockerfiles])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean():
    result = run(["ruff", "check", "."])
    assert result.returncode == 0, result.stdout + result.stderr
