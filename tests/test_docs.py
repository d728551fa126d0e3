"""The READMEs stay in step with the code: settings, defaults, commands."""

import re

import pytest

from helpers import REPO, docker

READMES = ["README.md", "README.zh-CN.md"]
TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*\*?)` \| ([^|]*) \|", re.MULTILINE)


def table(readme: str, first_header: str) -> dict[str, str]:
    """Rows of the README table whose first header cell is first_header."""
    text = (REPO / readme).read_text()
    start = text.index(f"| {first_header} |")
    block = text[start:text.index("\n\n", start)]
    return dict(TABLE_ROW.findall(block))


def entrypoint_variables() -> set[str]:
    """Every variable the entry-point gives a default to."""
    source = (REPO / "entry-point.sh").read_text()
    return set(re.findall(r': "\$\{([A-Z_]+):=', source))


@pytest.fixture(scope="module")
def image_defaults(image) -> dict[str, dict[str, str]]:
    """The defaults the entry-point in the built image really sets, per mode
    (sourcing it defines the functions without starting anything)."""
    found = {}
    for mode in ("production", "debug"):
        script = f". /usr/local/bin/entry-point.sh; flaskbox_setup_env {mode}; env"
        out = docker("run", "--rm", "--network", "host", "--entrypoint", "bash", image, "-c", script).stdout
        found[mode] = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return found


@pytest.mark.parametrize("readme,header", [("README.md", "Variable"), ("README.zh-CN.md", "变量")])
def test_settings_table_matches_the_entrypoint(readme, header, image_defaults):
    rows = table(readme, header)
    documented = set(rows) - {"UWSGI_*"}
    assert documented == entrypoint_variables() | {"APP_MODE"}, \
        "README and entry-point.sh list different variables"
    assert "UWSGI_*" in rows
    production, debug = image_defaults["production"], image_defaults["debug"]
    for name in entrypoint_variables():
        row = rows[name]
        if "computed" in row:
            # Sized from the CPU quota: test_workers.py checks the numbers.
            continue
        for mode, values in (("production", production), ("debug", debug)):
            value = values.get(name, "")
            expected = f"`{value}`" if value else "empty"
            assert expected in row, f"{name}={value!r} in {mode}, but {readme} says {row!r}"
    assert "`production`" in rows["APP_MODE"]


@pytest.mark.parametrize("readme,header", [("README.md", "Build argument"), ("README.zh-CN.md", "构建参数")])
def test_every_build_argument_is_documented(readme, header):
    dockerfile = (REPO / "Dockerfile").read_text()
    args = set(re.findall(r"^ARG ([A-Z_]+)", dockerfile, re.MULTILINE))
    text = (REPO / readme).read_text()
    missing = {arg for arg in args if f"`{arg}`" not in text}
    assert not missing, f"{readme} does not document build args {missing}"
    rows = table(readme, header)
    default_base = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile, re.MULTILINE).group(1)
    assert f"`{default_base}`" in rows["BASE_IMAGE"]


@pytest.mark.parametrize("readme", READMES)
def test_readme_gives_the_two_commands_ci_runs(readme):
    text = (REPO / readme).read_text()
    assert "deploy/up.sh " in text and "tests/run.sh " in text
    assert "tests/run.sh" in (REPO / ".ci" / "run").read_text()


def test_readmes_list_every_test_module():
    modules = sorted(p.name for p in (REPO / "tests").glob("test_*.py"))
    for readme in READMES:
        text = (REPO / readme).read_text()
        missing = [m for m in modules if f"`{m}`" not in text]
        assert not missing, f"{readme} misses {missing}"


def test_reliability_table_names_tests_that_exist():
    text = (REPO / "docs" / "RELIABILITY.md").read_text()
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)", text))
    assert len(named) >= 20, named
    for module, function in named:
        source = (REPO / "tests" / module).read_text()
        assert f"def {function}(" in source, f"docs/RELIABILITY.md names {module}::{function}, which is gone"
