"""Each setting's `enforced` list (lib/flaskbox/settings/setting.py), the
places that act on it once it is given, kept true in process, without a
container:

- every entry names something that exists: a dotted name imports from
  flaskbox and resolves to a function or class; "path: text" names a file
  of the repository that holds the text;
- every dotted entry uses the setting, and is used: its source names the
  setting, or the name it reaches it under (in backquotes in the entry's
  note: "prefix.Prefixed (as its `prefix`)"); and something calls it (its
  name appears in the code, the scripts or the templates besides its own
  definition; a command of `python3 -m flaskbox` is called by its name).
  A place nothing runs (check-app, once) is no place a setting acts;
- no reader is missing: a grep of the code, the templates and the scripts
  for each setting's name finds no place its list leaves out.

What the grep counts as reading a setting, simple on purpose:

- Python, lib/flaskbox/**/*.py: a string literal that is exactly the
  setting's name (settings["PORT"], values.get("PORT"), ("PORT", ...)). Its
  place is the function or class it sits in, or the module-level name it is
  assigned to; an entry covers the place it names and everything inside it
  ("serve.Serve" covers "serve.Serve._call_app"). Not scanned: the modules
  where settings are defined (DEFINITIONS), whose rows, defaults, forms,
  other names and Chinese words name settings without acting on them.
- templates (TEMPLATES): a ${NAME} placeholder, as template.py fills them.
  Its place is the file.
- scripts (SCRIPTS): $NAME or ${NAME...}, on a line that is not a
  comment. Its place is the file. The shell has no renamed copies of the
  settings (FLASKBOX_NAME): the few values its own steps use keep their
  names (__main__.SHELL_VALUES), and everything else reads the record.

A setting that reaches a place under another name (a derived value such as
UPSTREAM_TIMEOUT, a function's parameter) is not found by the grep: its
list names those places by hand, and only the first check covers them.
"""

import ast
import importlib
import inspect
import re
from fnmatch import fnmatch

import pytest

from flaskbox import settings
from helpers import REPO

LIB = REPO / "lib" / "flaskbox"
# Where settings are defined: each row (setting.py, table*.py), its computed
# default (defaults.py), its form (forms.py), its other names (names.py)
# and its Chinese words (zh_cn.py).
DEFINITIONS = ("settings/setting.py", "settings/table.py", "settings/table_*.py", "settings/defaults.py",
               "settings/forms.py", "settings/names.py", "settings/zh_cn.py")
TEMPLATES = ["nginx.conf", "nginx-static.conf", "app.ini"]
SCRIPTS = ["entry-point.sh", "healthcheck.sh", *sorted(str(path.relative_to(REPO))
                                                        for path in (REPO / "lib").rglob("*.sh"))]
NAMES = [setting.name for setting in settings.SETTINGS]
# "module.name (note)" or "path: text (note)", as setting.py describes.
ENTRY = re.compile(r"(?P<place>[\w./-]+)(?:: (?P<text>[^(]+?))?(?: \((?P<note>.+)\))?")


def parse(entry: str) -> tuple[str, str | None]:
    """(the place, the text to find in it, or None for a dotted name)."""
    match = ENTRY.fullmatch(entry)
    assert match, f"{entry!r}: expected 'module.name (note)' or 'path: text (note)'"
    return match["place"], match["text"]


# Where a place that acts on a setting may be called from.
CALLERS = sorted([*(REPO / "lib").rglob("*.py"), *(REPO / "lib").rglob("*.sh"),
                  REPO / "lib" / "bin" / "flask", REPO / "entry-point.sh", REPO / "healthcheck.sh",
                  REPO / "Dockerfile", *(REPO / name for name in TEMPLATES)])


def called(dotted: str) -> bool:
    """Whether something runs the place: its name appears besides its own
    definition; a `python3 -m flaskbox` command's by the command's name."""
    name = dotted.split(".")[-1]
    if dotted.startswith("__main__.cmd_"):
        from flaskbox.__main__ import COMMANDS

        command = next(key for key, function in COMMANDS.items() if function.__name__ == name)
        words = (f"flaskbox {command}", f'"{command}"')
        return any(word in path.read_text() for path in CALLERS if path.name != "__main__.py"
                   for word in words)
    word = re.compile(rf"\b{re.escape(name)}\b")
    definition = re.compile(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]")
    return any(word.search(line) and not definition.match(line)
               for path in CALLERS for line in path.read_text(errors="replace").splitlines())


def uses(setting: str, place, note: str | None) -> bool:
    """Whether the place's source names the setting, or the name the note
    says it reaches it under."""
    try:
        source = inspect.getsource(place)
    except TypeError:  # a constant
        source = repr(place)
    names = [setting, *re.findall(r"`([A-Za-z_][\w.]*)`", note or "")]
    return any(re.search(rf"\b{re.escape(name)}\b", source) for name in names)


def resolve_dotted(dotted: str):
    """The object a dotted name under flaskbox names: the longest prefix that
    imports, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module("flaskbox." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(f"no module of flaskbox in {dotted}")


def assigned_name(node) -> str | None:
    """NAME, for `NAME = ...` (a module's or a class's constant)."""
    target = node.target if isinstance(node, ast.AnnAssign) else \
        node.targets[0] if isinstance(node, ast.Assign) else None
    return target.id if isinstance(target, ast.Name) else None


def literal_reads(node, scope: list[str], in_function: bool, reads: set[tuple[str, str]]) -> None:
    """(setting, place) into `reads` for each setting's name as a string
    literal under `node`, whose place is `scope`."""
    for child in ast.iter_child_nodes(node):
        inner, inside = scope, in_function
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = [*scope, child.name]
            inside = in_function or not isinstance(child, ast.ClassDef)
        elif not in_function and assigned_name(child):
            inner = [*scope, assigned_name(child)]
        if isinstance(child, ast.Constant) and child.value in NAMES:
            reads.add((child.value, ".".join(scope)))
        literal_reads(child, inner, inside, reads)


def python_reads() -> set[tuple[str, str]]:
    """(setting, place) for each string literal in flaskbox that is a
    setting's name, outside the DEFINITIONS."""
    reads: set[tuple[str, str]] = set()
    for path in sorted(LIB.rglob("*.py")):
        relative = path.relative_to(LIB)
        if not any(fnmatch(str(relative), pattern) for pattern in DEFINITIONS):
            module = ".".join(relative.with_suffix("").parts)
            literal_reads(ast.parse(path.read_text()), [module], False, reads)
    return reads


def file_reads(paths: list[str], pattern: str, skip_comments: bool) -> set[tuple[str, str]]:
    """(setting, path) for each file where `pattern` ({name} filled in)
    finds a setting's name."""
    found = re.compile(pattern.format(name="|".join(sorted(NAMES, key=len, reverse=True))))
    reads = set()
    for path in paths:
        for line in (REPO / path).read_text().splitlines():
            if skip_comments and line.lstrip().startswith("#"):
                continue
            reads.update((name, path) for name in found.findall(line))
    return reads


def all_reads() -> set[tuple[str, str]]:
    return (python_reads()
            | file_reads(TEMPLATES, r"\$\{{({name})\}}", skip_comments=False)
            | file_reads(SCRIPTS, r"\$\{{?({name})\b", skip_comments=True))


def covers(entry: str, place: str) -> bool:
    where, text = parse(entry)
    if text is not None:
        return where == place
    return place == where or place.startswith(where + ".")


def test_every_setting_names_where_it_is_enforced():
    assert not [name for name in NAMES if not settings.BY_NAME[name].enforced]


@pytest.mark.parametrize("name", NAMES)
def test_each_place_a_setting_lists_exists(name):
    wrong = []
    entries = settings.BY_NAME[name].enforced
    assert len(set(entries)) == len(entries), f"{name}: an entry listed twice"
    for entry in entries:
        place, text = parse(entry)
        if text is None:
            try:
                found = resolve_dotted(place)
            except (ImportError, AttributeError) as exc:
                wrong.append(f"{entry}: {exc}")
                continue
            if not callable(found) and not isinstance(found, (tuple, frozenset, set, dict, str)):
                wrong.append(f"{entry}: names {type(found).__name__}, not a function, class or constant")
            elif not uses(name, found, ENTRY.fullmatch(entry)["note"]):
                wrong.append(f"{entry}: its source names neither {name} nor a `name` its note gives")
            elif not called(place):
                wrong.append(f"{entry}: nothing calls it")
        elif not (REPO / place).is_file():
            wrong.append(f"{entry}: no file {place}")
        elif text not in (REPO / place).read_text():
            wrong.append(f"{entry}: {place} has no {text!r}")
    assert not wrong, f"{name}'s enforced list (lib/flaskbox/settings/table_*.py): {wrong}"


def test_every_place_that_reads_a_setting_is_listed():
    missing = sorted(f"{name} is read in {place}" for name, place in all_reads()
                     if not any(covers(entry, place) for entry in settings.BY_NAME[name].enforced))
    assert not missing, ("add each place to the setting's `enforced` (lib/flaskbox/settings/table_*.py): "
                         + "; ".join(missing))


# --- the grep itself, on what it must and must not count --------------------

def test_the_grep_finds_reads_in_code_templates_and_scripts():
    reads = all_reads()
    assert ("REQUEST_TIMEOUT", "settings.resolve._upstream_timeout") in reads
    assert ("ALLOWED_HOSTS", "pool.wsgi.from_record") in reads
    assert ("RELOAD_GRACE", "arbiter.generation.Generation.retire") in reads
    assert ("APP_MODULE", "__main__.SHELL_VALUES") in reads  # a module-level name
    assert ("FILE_VARS_IGNORE", "start.file_vars.IGNORE") in reads
    assert ("PORT", "nginx.conf") in reads
    assert ("WORKER_CONNECTIONS", "app.ini") in reads
    assert ("PRE_START_PATH", "lib/hooks.sh") in reads  # as $PRE_START_PATH
    assert ("ENTRYPOINT_QUIET_LOGS", "lib/common.sh") in reads  # as ${ENTRYPOINT_QUIET_LOGS:-0}


def test_the_shell_keeps_no_renamed_copy_of_a_setting():
    # PID 1 evaluates nothing, and no FLASKBOX_NAME copies a setting: the
    # arbiter and the servers read the record (one channel).
    copies = file_reads(SCRIPTS, r"\bFLASKBOX_({name})\b", skip_comments=False)
    assert copies == set(), copies
    scripts = [*SCRIPTS, "lib/bin/flask"]
    assert not [path for path in scripts if re.search(r"^\s*eval\b", (REPO / path).read_text(), re.M)]


def test_a_place_must_use_the_setting_and_be_called():
    # What kept `check-app` alive: listed, existing, using APP_MODULE, and
    # run by nothing.
    def check_app():
        return settings.BY_NAME["APP_MODULE"]

    assert uses("APP_MODULE", check_app, None)
    assert not called("check_app_that_nothing_runs")
    assert called("arbiter.generation.Generation.retire")
    assert called("__main__.cmd_prepare")  # entry-point.sh: python3 -I -m flaskbox prepare
    assert not uses("REQUEST_TIMEOUT", check_app, None)
    assert uses("REQUEST_TIMEOUT", check_app, "as its `settings`")


def test_the_grep_leaves_definitions_longer_names_and_comments_alone():
    reads = all_reads()
    places = {place for _, place in reads}
    assert not any(place.startswith(("settings.table", "settings.zh_cn", "settings.defaults"))
                   for place in places)
    # Whole names only: ${PORT} reads PORT; ${PORT_FORM}, a derived value,
    # reads nothing, and no placeholder there reads TLS_PORT.
    assert ("PORT", "nginx.conf") in reads and ("TLS_PORT", "nginx.conf") not in reads
    assert file_reads(["lib/common.sh"], r"\$\{{?({name})\b", skip_comments=True) \
        == {("ENTRYPOINT_QUIET_LOGS", "lib/common.sh"), ("LOG_FORMAT", "lib/common.sh")}


def test_an_entry_covers_its_place_and_what_is_inside_it():
    assert covers("request.serve.Serve (note)", "request.serve.Serve._call_app")
    assert not covers("request.serve.Serve", "request.serve.Serves")
    assert covers("nginx.conf: proxy_read_timeout (UPSTREAM_TIMEOUT)", "nginx.conf")
    assert not covers("nginx.conf: listen", "nginx-static.conf")
    assert parse("app.ini: ini = %p:${WORKER_CLASS} (its [sync] or [gevent] section)") \
        == ("app.ini", "ini = %p:${WORKER_CLASS}")
    assert parse("arbiter.stop.Stop") == ("arbiter.stop.Stop", None)
