"""The READMEs stay in step with the code: settings, defaults, commands."""

import json
import re

import pytest

from flaskbox import settings
from helpers import REPO, docker

READMES = ["README.md", "README.zh-CN.md"]
TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*\*?)` \| ([^|]*) \|", re.MULTILINE)


def table(readme: str, first_header: str) -> dict[str, str]:
    """Rows of the README table whose first header cell is first_header."""
    text = (REPO / readme).read_text()
    start = text.index(f"| {first_header} |")
    block = text[start:text.index("\n\n", start)]
    return dict(TABLE_ROW.findall(block))


@pytest.mark.parametrize("readme,header,computed", [("README.md", "Variable", "computed"),
                                                    ("README.zh-CN.md", "变量", "计算")])
def test_settings_table_matches_the_settings(readme, header, computed):
    # One row per setting of lib/flaskbox/settings.py, and UWSGI_* for the
    # rest; each row states the table's fixed default, or says it is computed.
    rows = table(readme, header)
    assert set(rows) - {"UWSGI_*"} == set(settings.BY_NAME), f"{readme} and settings.py differ"
    assert "UWSGI_*" in rows
    for setting in settings.SETTINGS:
        row, said = rows[setting.name], setting.default_doc
        if "(computed)" in said:
            expected = [computed]
        elif said == "(empty)":
            expected = ["(empty)" if readme == "README.md" else "（空）"]
        else:
            expected = re.findall(r"`[^`]+`", said)  # the values themselves
        missing = [text for text in expected if text not in row]
        assert not missing, f"{setting.name}: settings.py says {said!r}, {readme}: {row!r}"


def test_image_has_the_repositorys_settings(image):
    # The defaults the image really applies are the table's: its own copy of
    # settings.py, asked for every setting.
    script = ("import json; from flaskbox import settings as s; "
              "print(json.dumps({x.name: x.default_doc for x in s.SETTINGS}))")
    out = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", image, "-c", script).stdout
    assert json.loads(out) == {setting.name: setting.default_doc for setting in settings.SETTINGS}


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
