"""Errors stay on the server: a crash is a plain 500 for the client and a
traceback in the log; the Werkzeug debugger is never reachable in production."""

import uuid

import pytest

LEAKS = ("Traceback", "RuntimeError", "app.py", "werkzeug", "flask", "debugger")


def assert_nothing_leaks(resp, *extra: str) -> None:
    text = resp.text.lower() + " ".join(f"{k}: {v}" for k, v in resp.headers.items()).lower()
    for leak in (*LEAKS, *extra):
        assert leak.lower() not in text, f"{leak!r} leaked to the client:\n{resp.headers}\n{resp.text}"


def test_unhandled_exception_is_a_plain_500(containers, fixture_image):
    secret = uuid.uuid4().hex
    c = containers.serving(image=fixture_image["image"], env={"SECRET_TOKEN": secret})
    resp = c.request("/boom")
    assert resp.status == 500
    assert_nothing_leaks(resp, secret)
    # ...but the operator does get it, in the container log.
    c.wait_until(lambda: secret in c.logs(), "the traceback in docker logs", timeout=10)
    assert "Traceback" in c.logs()


@pytest.mark.parametrize("env", [{"FLASK_DEBUG": "1"}, {"FLASK_ENV": "development"},
                                 {"FLASK_DEBUG": "1", "FLASK_ENV": "development"}],
                         ids=["FLASK_DEBUG", "FLASK_ENV", "both"])
def test_debugger_is_unreachable_in_production_whatever_the_environment(containers, fixture_image, env):
    secret = uuid.uuid4().hex
    c = containers.serving(image=fixture_image["image"], env={**env, "SECRET_TOKEN": secret})
    crash = c.request("/boom")
    assert crash.status == 500
    assert_nothing_leaks(crash, secret, "__debugger__", "console")
    # The debugger's own resources and console are not served either.
    for path in ("/?__debugger__=yes&cmd=resource&f=debugger.js", "/console"):
        resp = c.request(path)
        assert "debugger" not in resp.text.lower() and "werkzeug" not in resp.text.lower(), path
    # The app does not even see the variables.
    for name in env:
        assert c.request(f"/env/{name}").json() == {"value": None}


def test_an_answer_whose_close_raises_is_a_500_and_gives_its_place_back(containers, fixture_image):
    # Each of these once kept its place in the gate and the watchdog's registry:
    # past the threads' count every request waited in line, then 503, or a false 504.
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "1", "UWSGI_THREADS": "4"})
    for _ in range(12):
        resp = c.request("/close-raises")
        assert resp.status == 500, c.logs()
        assert_nothing_leaks(resp)
    assert [c.request("/").status for _ in range(5)] == [200] * 5, c.logs()
    c.wait_until(lambda: "KeyError" in c.logs(), "the close()'s traceback in docker logs", timeout=10)
    assert "ran past REQUEST_TIMEOUT" not in c.logs()
