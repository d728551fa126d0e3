"""The docs stay in step with the code: the settings table, build arguments,
the two commands, the test modules, the reliability table, and every link
between the pages, in English and Chinese."""

import json
import re

import pytest

from flaskbox import settings
from helpers import REPO, docker

READMES = ["README.md", "README.zh-CN.md"]
# Each reference page, in English (docs/) and Chinese (docs/zh-CN/).
PAGES = ["architecture.md", "configuration.md", "production.md", "develop.md", "streaming.md", "your-app.md",
         "kubernetes.md", "swarm.md", "building.md", "testing.md"]
CONFIGURATION = [("docs/configuration.md", "Variable", "computed"),
                 ("docs/zh-CN/configuration.md", "变量", "计算")]
TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*\*?)` \| ([^|]*) \|", re.MULTILINE)


def table(page: str, first_header: str) -> dict[str, str]:
    """Rows of the page's table whose first header cell is first_header."""
    text = (REPO / page).read_text()
    start = text.index(f"| {first_header} |")
    block = text[start:text.index("\n\n", start)]
    return dict(TABLE_ROW.findall(block))


@pytest.mark.parametrize("readme,header,computed", CONFIGURATION)
def test_settings_table_matches_the_settings(readme, header, computed):
    # One row per setting of lib/flaskbox/settings/table.py, and UWSGI_* for the
    # rest; each row states the table's fixed default, or says it is computed.
    rows = table(readme, header)
    assert set(rows) - {"UWSGI_*"} == set(settings.BY_NAME), f"{readme} and the settings table differ"
    assert "UWSGI_*" in rows
    for setting in settings.SETTINGS:
        row, said = rows[setting.name], setting.default_doc
        if "(computed)" in said:
            expected = [computed]
        elif said == "(empty)":
            expected = ["(empty)" if "zh-CN" not in readme else "（空）"]
        else:
            expected = re.findall(r"`[^`]+`", said)  # the values themselves
        missing = [text for text in expected if text not in row]
        assert not missing, f"{setting.name}: the table says {said!r}, {readme}: {row!r}"


@pytest.mark.parametrize("page, language", [("docs/configuration.md", "en"),
                                            ("docs/zh-CN/configuration.md", "zh-CN")])
def test_the_tables_are_the_settings_own_words(page, language):
    # Every row of each page's table is what `python3 -m flaskbox docs-table
    # [zh-CN]` prints from the table (and, in Chinese, settings/zh_cn.py):
    # name, default and meaning, so neither page can drift from the code.
    from flaskbox.settings import zh_cn

    assert set(zh_cn.TEXTS) == set(settings.BY_NAME), "zh_cn.py and the table name different settings"
    text = (REPO / page).read_text()
    rows = re.findall(r"^\| `[A-Z][A-Z0-9_]*` \|.*\|$", text, re.MULTILINE)
    generated = [f"| `{s.name}` | {s.default_doc} | {s.doc} |" if language == "en"
                 else f"| `{s.name}` | {zh_cn.TEXTS[s.name][0]} | {zh_cn.TEXTS[s.name][1]} |"
                 for s in settings.SETTINGS]
    assert [row for row in rows if not row.startswith("| `UWSGI_*`")] == generated


def test_image_has_the_repositorys_settings(image):
    # The defaults the image really applies are the table's: its own copy of
    # settings table, asked for every setting.
    script = ("import json; from flaskbox import settings as s; "
              "print(json.dumps({x.name: x.default_doc for x in s.SETTINGS}))")
    out = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", image, "-c", script).stdout
    assert json.loads(out) == {setting.name: setting.default_doc for setting in settings.SETTINGS}


@pytest.mark.parametrize("readme,header", [("docs/building.md", "Build argument"),
                                           ("docs/zh-CN/building.md", "构建参数")])
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


@pytest.mark.parametrize("page", ["docs/testing.md", "docs/zh-CN/testing.md"])
def test_testing_page_lists_every_test_module(page):
    modules = sorted(p.name for p in (REPO / "tests").glob("test_*.py"))
    text = (REPO / page).read_text()
    missing = [m for m in modules if f"`{m}`" not in text]
    assert not missing, f"{page} misses {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_exists_in_both_languages(page):
    assert (REPO / "docs" / page).is_file() and (REPO / "docs" / "zh-CN" / page).is_file()


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


ALL_PAGES = [*READMES, *(f"docs/{p}" for p in PAGES), *(f"docs/zh-CN/{p}" for p in PAGES),
             "docs/RELIABILITY.md", "docs/BENCHMARKS.md"]


@pytest.mark.parametrize("page", ALL_PAGES)
def test_links_between_pages_resolve(page):
    path = REPO / page
    broken = [target for target in LINK.findall(path.read_text())
              if "://" not in target and not (path.parent / target).exists()]
    assert not broken, f"{page} links to missing {broken}"


def test_reliability_table_names_tests_that_exist():
    text = (REPO / "docs" / "RELIABILITY.md").read_text()
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)", text))
    assert len(named) >= 20, named
    for module, function in named:
        source = (REPO / "tests" / module).read_text()
        assert f"def {function}(" in source, f"docs/RELIABILITY.md names {module}::{function}, which is gone"
