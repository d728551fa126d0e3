"""The benchmark's variants (bench/variants.py) and profile
(bench/profiling.py), checked without load: every nginx feature
`--features` takes out is still where variants.py looks for it (an edit
of nginx.conf that moves one fails here, not in the middle of a benchmark),
and so is each of the static location's that `--prices` takes out,
nginx serves without all of them, the profile's parsers read what perf
and py-spy write, and the in-process count (bench/wrapper_count.py) runs
today's wrapper."""

import subprocess
import sys
import uuid

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))
import profiling  # noqa: E402
import variants  # noqa: E402

TEMPLATE = (REPO / "nginx.conf").read_text()


@pytest.mark.parametrize("name", list(variants.FEATURE_EDITS))
def test_each_feature_is_found_and_taken_out(name):
    edited = variants.without_features(TEMPLATE, [name])
    assert edited != TEMPLATE
    for old, _ in variants.FEATURE_EDITS[name]:
        assert old not in edited


def test_a_feature_that_moved_fails_loudly():
    moved = TEMPLATE.replace("add_header X-Frame-Options", "add_header  X-Frame-Options")
    with pytest.raises(SystemExit, match="update FEATURE_EDITS"):
        variants.without_features(moved, ["hardening and Retry-After headers"])


def test_each_static_feature_is_found_and_taken_out():
    # --prices takes the static location's own features out of
    # nginx-static.conf as written (the fingerprinted names' expression whole).
    import prices

    template = (REPO / "nginx-static.conf").read_text()
    for name, edits in prices.STATIC_EDITS.items():
        edited = prices.without_static([name])
        assert all(old in template and old not in edited for old, _ in edits), name


def test_nginx_serves_without_every_feature(containers, tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(variants.without_features(TEMPLATE, list(variants.FEATURE_EDITS)))
    conf.chmod(0o644)
    bare = containers.run(docker_args=("-v", f"{conf}:/etc/flaskbox/nginx.conf:ro"))
    stripped = bare.wait_http("/")
    # What the features add is gone: the request id and the hardening headers.
    assert "x-request-id" not in stripped.headers, stripped.headers
    assert "x-frame-options" not in stripped.headers, stripped.headers
    # ...and the image's own configuration adds them to the same page.
    full = containers.run().wait_http("/")
    assert full.headers.get("x-frame-options") == "SAMEORIGIN", full.headers
    assert full.headers.get("x-request-id"), full.headers
    assert full.body == stripped.body


def test_perf_report_lines_become_shares():
    report = """# Samples: 19K of event 'cpu-clock'
#
    57.10%  uwsgi            libpython3.11.so.1.0
    10.12%  nginx            [kernel.kallsyms]
     0.12%  ksoftirqd/0      [kernel.kallsyms]
"""
    assert profiling.perf_shares(report) == [
        {"percent": 57.1, "process": "uwsgi", "object": "libpython3.11.so.1.0"},
        {"percent": 10.12, "process": "nginx", "object": "[kernel.kallsyms]"},
    ]



def test_perf_symbol_lines_become_shares():
    report = """# Samples: 12K of event 'cpu-clock'
#
     6.10%  [kernel.kallsyms]         [k] _raw_spin_unlock_irqrestore
     3.02%  libpython3.11.so.1.0      [.] _PyEval_EvalFrameDefault
     0.40%  libc.so.6                 [.] __memmove_avx_unaligned_erms
"""
    assert profiling.symbol_shares(report) == [
        {"percent": 6.1, "object": "[kernel.kallsyms]", "symbol": "_raw_spin_unlock_irqrestore"},
        {"percent": 3.02, "object": "libpython3.11.so.1.0", "symbol": "_PyEval_EvalFrameDefault"},
    ]

def test_py_spy_samples_go_to_the_innermost_package():
    raw = ("Serve.__call__ (flaskbox/request/serve.py:162);Flask.wsgi_app (flask/app.py:1506);"
           "Map.bind (werkzeug/routing/map.py:241) 6\n"
           "Serve.__call__ (flaskbox/request/serve.py:144);client_gone (flaskbox/request/serve.py:63) 2\n"
           " 2\n")
    shares = profiling.python_shares(raw)
    assert shares["samples"] == 10
    assert shares["own_code_percent"] == {
        "werkzeug": 60.0, "flaskbox": 20.0,
        "no Python frame (uWSGI's C code: accept, parse, environ, write)": 20.0}
    assert shares["inside_flaskbox_serve_percent"] == 80.0


def test_the_in_process_count_serves_through_todays_wrapper():
    # bench/wrapper_count.py counts these runs: each answers every request.
    import wrapper_count
    for gate_kind in ("gate", "open"):
        for direct in (False, True):
            assert wrapper_count.served(5, gate_kind, direct) == 5 * len(b"Hello World"), (gate_kind, direct)


def test_the_wrapper_cost_is_timed_around_a_working_request():
    # wrapper_cost refuses to time a wrapper that does not reach the app.
    cost = profiling.wrapper_cost(calls=200, repeats=1)
    assert 0 < cost["bare_app_us"] < cost["wrapped_us"], cost


# The files the pieces are taken out of (the wrapper spans serve.py and request.py).
SOURCES = {file: (REPO / "lib" / "flaskbox" / file).read_text()
           for file in sorted({file for edits in variants.WRAPPER_EDITS.values() for file, _, _ in edits})}


@pytest.mark.parametrize("name", list(variants.WRAPPER_EDITS))
def test_each_wrapper_piece_is_found_and_taken_out(name):
    edited = variants.without_pieces(SOURCES, [name])
    assert edited != SOURCES
    for file, old, _ in variants.WRAPPER_EDITS[name]:
        assert old not in edited[file]


@pytest.mark.parametrize("name", list(variants.WRAPPER_EDITS))
def test_flaskbox_serves_without_each_wrapper_piece(containers, tmp_path, name):
    # What --wrapper measures must be a server that still answers.
    mounts = []
    for file, text in variants.without_pieces(SOURCES, [name]).items():
        if text != SOURCES[file]:
            path = tmp_path / file.replace("/", "-")
            path.write_text(text)
            tmp_path.chmod(0o755)
            path.chmod(0o644)
            mounts += ["-v", f"{path}:/usr/local/lib/flaskbox/flaskbox/{file}:ro"]
    assert mounts
    token = uuid.uuid4().hex
    served = containers.run(docker_args=tuple(mounts)).wait_http(f"/?name={token}")
    assert token.encode() in served.body


def test_the_price_lists_processes_run_with_one_hash_seed():
    """--prices counts a uWSGI worker's instructions: with Python's hash
    seed random in each run, the same code read +-5k apart."""
    import prices

    class Recorder:
        def __init__(self):
            self.calls = []

        def exec(self, *args):
            self.calls.append(args)
            count = 1_000_000 if "N=100" in args else 1_300_000
            return subprocess.CompletedProcess(args, 0, stdout=f"{count}\n", stderr="")

    container = Recorder()
    assert prices.counted(container, "INT", "drive {N}", ["uwsgi"], ("BARE_THREADS=1",)) == 1000
    for call in container.calls:
        assert call[0] == "env" and "PYTHONHASHSEED=0" in call and "BARE_THREADS=1" in call
        assert call.index("PYTHONHASHSEED=0") < call.index("bash")
