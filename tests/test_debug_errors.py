"""Debug mode: a syntax error in the mounted code never stops the container,
nor one a hook meets (a migration importing the app), which waits for the fix.
The error is shown in the log and in the browser, and the app is back as
soon as the file is fixed, whether the error was saved while serving or was
already there at start; a chmod is a fix too. A server process that
crashes (SIGSEGV) is named in the log and started again."""

import http.client
import time
import types
import uuid

import pytest

from helpers import docker, share_with_container

BROKEN = "\n\ndef broken(:\n    pass\n"
# What a loaded machine takes (two busy CPU loops beside the test on 2
# CPUs, Python 3.14: docs/testing.md), doubled: one traceback page took up
# to 5.3 s to send, the error was shown up to 8.1 s after `docker run`, and
# a fix was served up to 4.4 s after its save (one request of it 4.0 s),
# and a failed hook's fix (the hook again, then the server) 9.3 s. Debug
# mode's 2 s for a save is test_debug.py's, measured alone; here, a fix is
# served at all, and the figures say how soon.
PAGE_SECONDS, SHOWN_SECONDS, FIXED_SECONDS, HOOK_FIXED_SECONDS = 11, 17, 9, 19


def error_page(container, path: str = "/api/hello"):
    """The debugger's traceback page for the import error, once it is served."""
    def shown():
        resp = container.request(path, timeout=PAGE_SECONDS)
        return resp if resp.status == 500 and "SyntaxError" in resp.text else None

    return container.wait_until(shown, "the syntax error to be shown", timeout=SHOWN_SECONDS, interval=0.05)


def assert_fixed_and_served(container, source, good: str) -> float:
    """Saves the fixed file; returns the seconds until it is served."""
    token = f"Fixed{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    source.write_text(good.replace('f"Hello, {name}!"', f'f"{token}, {{name}}!"'))

    def served():
        resp = container.request("/api/hello?name=Ann", timeout=FIXED_SECONDS)
        return resp.status == 200 and resp.json() == {"message": f"{token}, Ann!"}

    container.wait_until(served, "the fixed app", timeout=FIXED_SECONDS, interval=0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("reloader", ["inotify", "poll"])
def test_syntax_error_saved_while_serving_is_shown_then_fixed(containers, app_copy, reloader, figure):
    c = containers.run("-d", "debug", env={"DEBUG_RELOADER": reloader},
                       docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/api/hello")
    source = app_copy / "app.py"
    good = source.read_text()
    source.write_text(good + BROKEN)

    page = error_page(c)
    # The browser gets the interactive traceback, pointing at the file.
    assert "Werkzeug Debugger" in page.text and "app.py" in page.text
    assert c.running()
    logs = c.logs()
    assert "SyntaxError" in logs and 'File "/app/app.py", line' in logs, logs
    assert "failed to load; serving the error until the next save" in logs

    figure("fix to served, seconds", f"{assert_fixed_and_served(c, source, good):.2f}")
    assert c.running()


def test_syntax_error_at_start_keeps_the_server_up(containers, app_copy):
    """A container (re)started on broken code serves the error instead of
    exiting: `docker compose up` on a half-edited tree must not crash-loop."""
    source = app_copy / "app.py"
    good = source.read_text()
    source.write_text(good + BROKEN)
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    page = error_page(c)
    assert "app.py" in page.text
    assert "SyntaxError" in c.logs()
    assert_fixed_and_served(c, source, good)



def test_a_crashed_server_process_is_named_and_started_again(containers, app_copy):
    # A C extension's segfault in a request (here, the signal itself). Before,
    # Werkzeug's reloader returned the crash's status and the container
    # exited (245) with no word of why.
    source = app_copy / "app.py"
    source.write_text(source.read_text() + (
        "\n\n@app.get('/crash')\ndef crash():\n    import os, signal\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"))
    share_with_container(source)
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/api/hello")
    try:
        c.request("/crash", timeout=5)
    except (OSError, http.client.HTTPException):
        pass  # the connection goes with the process
    c.wait_until(lambda: "the dev server crashed (SIGSEGV" in c.logs(), "the crash named")
    assert c.wait_http("/api/hello", timeout=10).status == 200
    assert c.running()

def test_repeated_requests_show_the_same_error(containers, app_copy):
    """The error page stays the same size however often it is requested: the
    stored traceback is not extended by each re-raise."""
    source = app_copy / "app.py"
    source.write_text(source.read_text() + BROKEN)
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    error_page(c)
    frames = [c.request("/api/hello", timeout=PAGE_SECONDS).text.count('<div class="frame') for _ in range(3)]
    assert frames[0] > 0 and frames == [frames[0]] * 3, frames


# --- hooks: a migration that imports broken code ------------------------------

IMPORT_HOOK = "#!/bin/sh\n# What a migration does first: import the app.\nexec python -c 'import app'\n"


def hooks_folder(tmp_path, name: str, text: str):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / name).write_text(text)
    for path in (tmp_path, hooks, hooks / name):
        path.chmod(0o755)
    return hooks


def mounts(app_copy, hooks) -> tuple[str, ...]:
    return ("-v", f"{app_copy}:/app", "-v", f"{hooks}:/docker-entrypoint.d")


def test_a_hook_meeting_a_syntax_error_waits_for_the_fix(containers, app_copy, tmp_path, figure):
    hooks = hooks_folder(tmp_path, "10-import.sh", IMPORT_HOOK)
    source = app_copy / "app.py"
    good = source.read_text()
    source.write_text(good + BROKEN)
    c = containers.run("-d", "debug", docker_args=mounts(app_copy, hooks))
    waiting = "debug mode: waiting for a change in /app or in the hooks"
    c.wait_until(lambda: waiting in c.logs(), "the failed hook to be reported", timeout=30)
    logs = c.logs()
    assert "SyntaxError" in logs and "hook /docker-entrypoint.d/10-import.sh failed with exit code 1" in logs
    assert "Serving Flask app" not in logs
    started = time.monotonic()
    source.write_text(good)
    # The hook runs again, passes, and the server starts with the fixed code.
    c.wait_http("/api/hello", timeout=HOOK_FIXED_SECONDS, interval=0.05)
    figure("a failed hook's fix saved to the app served, seconds", f"{time.monotonic() - started:.2f}")
    runs = [line for line in c.logs().splitlines()
            if line == "flaskbox: running /docker-entrypoint.d/10-import.sh"]
    assert len(runs) == 2, c.logs()


def test_a_hook_with_a_syntax_error_of_its_own_waits_for_its_fix(containers, app_copy, tmp_path):
    hooks = hooks_folder(tmp_path, "10-broken.sh", "#!/bin/sh\nif then fi\n")
    c = containers.run("-d", "debug", docker_args=mounts(app_copy, hooks))
    c.wait_until(lambda: "waiting for a change" in c.logs(), "the failed hook to be reported", timeout=30)
    assert "syntax error" in c.logs().lower()
    (hooks / "10-broken.sh").write_text("#!/bin/sh\necho hook fixed\n")
    c.wait_http("/api/hello", timeout=HOOK_FIXED_SECONDS, interval=0.05)
    assert "hook fixed" in c.logs()


def test_a_chmod_is_a_fix_a_waiting_hook_sees(containers, app_copy, tmp_path):
    # The fix a hook is told for a folder it may not write is a chmod, which
    # changes no file's time or size: the wait saw nothing until some other
    # file was saved.
    script = app_copy / "seed.sh"
    script.write_text("#!/bin/sh\necho seeded\n")
    script.chmod(0o644)
    hooks = hooks_folder(tmp_path, "10-seed.sh", "#!/bin/sh\n/app/seed.sh\n")
    c = containers.run("-d", "debug", docker_args=mounts(app_copy, hooks))
    c.wait_until(lambda: "waiting for a change" in c.logs(), "the failed hook to be reported", timeout=30)
    script.chmod(0o755)
    c.wait_http("/api/hello", timeout=HOOK_FIXED_SECONDS, interval=0.05)
    assert "seeded" in c.logs()


def test_the_wait_counts_modes_and_owners_not_the_instance_folders_data(tmp_path, monkeypatch):
    from flaskbox.debug import changes

    monkeypatch.setattr(changes, "INSTANCE", str(tmp_path / "instance"))
    (tmp_path / "instance").mkdir()
    (tmp_path / "app.py").write_text("x")
    before = changes.state([str(tmp_path)])
    (tmp_path / "instance" / "data.sqlite").write_text("rows")
    assert changes.state([str(tmp_path)]) == before  # the app's data is no fix
    (tmp_path / "instance").chmod(0o775)  # the fix for a folder a hook may not write
    after_chmod = changes.state([str(tmp_path)])
    assert after_chmod != before
    (tmp_path / "app.py").chmod(0o755)
    assert changes.state([str(tmp_path)]) != after_chmod


def test_a_folder_the_failed_hook_made_is_no_fix(tmp_path, monkeypatch):
    # Flask's create_app makes instance/: the migration that failed made it,
    # and running it again at once would fail the same way. The wait's
    # looks are counted, not timed: each pause between two is a call here.
    from flaskbox.debug import changes

    monkeypatch.setattr(changes, "INSTANCE", str(tmp_path / "instance"))
    (tmp_path / "app.py").write_text("x")
    before = changes.state([str(tmp_path)])
    (tmp_path / "instance").mkdir()  # by the hook, before it failed
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            (tmp_path / "instance").chmod(0o775)  # the fix, after three looks that found none
        assert len(pauses) < 10, "the fix was not seen"

    monkeypatch.setattr(changes, "time", types.SimpleNamespace(sleep=pause))
    changes.await_change(before, [str(tmp_path)])
    assert pauses == [changes.POLL_INTERVAL] * 3


def test_docker_stop_while_waiting_for_a_fix_is_prompt_and_clean(containers, app_copy, tmp_path, figure):
    hooks = hooks_folder(tmp_path, "10-import.sh", IMPORT_HOOK)
    (app_copy / "app.py").write_text((app_copy / "app.py").read_text() + BROKEN)
    c = containers.run("-d", "debug", docker_args=mounts(app_copy, hooks))
    c.wait_until(lambda: "waiting for a change" in c.logs(), "the failed hook to be reported", timeout=30)
    started = time.monotonic()
    docker("stop", c.name, timeout=30)
    elapsed = time.monotonic() - started
    figure("docker stop while waiting for a hook's fix, seconds", f"{elapsed:.2f}")
    assert c.exit_code() == 0, c.logs()
    # SIGTERM ends the wait itself: no 10 s grace and SIGKILL.
    assert elapsed < 5, elapsed


def test_in_production_a_failing_hook_still_stops_the_start(containers, app_copy, tmp_path):
    hooks = hooks_folder(tmp_path, "10-import.sh", IMPORT_HOOK)
    (app_copy / "app.py").write_text((app_copy / "app.py").read_text() + BROKEN)
    c = containers.run(docker_args=mounts(app_copy, hooks))
    assert c.wait_exit(timeout=30) == 1
    assert "failed with exit code 1; not starting" in c.logs()
