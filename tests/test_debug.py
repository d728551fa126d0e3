"""Debug mode: the Flask dev server reloads bind-mounted code."""

import uuid


def test_debug_serves_mounted_code_and_reloads_edits(containers, app_copy):
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/api/hello")

    token = f"Reloaded{uuid.uuid4().hex[:8]}"
    source = app_copy / "app.py"
    source.write_text(source.read_text().replace('f"Hello, {name}!"', f'f"{token}, {{name}}!"'))

    def reloaded():
        resp = c.request("/api/hello?name=Ann", timeout=2)
        return resp.status == 200 and resp.json() == {"message": f"{token}, Ann!"}

    c.wait_until(reloaded, "the edited code to be served", timeout=5)


def test_debug_mode_from_app_mode_variable(containers, app_copy):
    c = containers.run(env={"APP_MODE": "debug"}, docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    logs = c.logs()
    assert "Debug mode: on" in logs
    # The debugger is announced loudly, with the safe way to publish it.
    assert "WARNING" in logs and "127.0.0.1:" in logs


def test_debug_writes_nothing_into_the_mounted_source(containers, app_copy):
    before = sorted(p.relative_to(app_copy) for p in app_copy.rglob("*"))
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    c.wait_http("/api/hello")
    after = sorted(p.relative_to(app_copy) for p in app_copy.rglob("*"))
    assert after == before
