"""Debug mode's interactive debugger: on, guarded by the PIN printed in the
log (the same PIN after a reload), and announced by a loud warning about
code execution and about publishing the port on every interface."""

import os
import random
import re
import urllib.parse

import pytest

from helpers import REPO

PIN_LINE = re.compile(r"Debugger PIN: (\d{3}-\d{3}-\d{3})")


def logged_pins(container) -> list[str]:
    return PIN_LINE.findall(container.logs())


class DebuggerClient:
    """Talks to the Werkzeug debugger's console the way its page's script
    does: the page's SECRET, then the PIN, then commands, with the cookie."""

    def __init__(self, container):
        self.container = container
        page = container.request("/console")
        assert page.status == 200 and "Werkzeug Debugger" in page.text, page.text[:500]
        self.secret = re.search(r'SECRET = "([^"]+)"', page.text).group(1)
        self.cookie = ""

    def _get(self, **params):
        query = urllib.parse.urlencode({"__debugger__": "yes", "s": self.secret, **params})
        headers = {"Cookie": self.cookie} if self.cookie else {}
        return self.container.request(f"/console?{query}", headers=headers)

    def pin_auth(self, pin: str) -> dict:
        resp = self._get(cmd="pinauth", pin=pin)
        if "set-cookie" in resp.headers:
            self.cookie = resp.headers["set-cookie"].split(";", 1)[0]
        return resp.json()

    def run(self, code: str) -> str:
        return self._get(cmd=code, frm="0").text


def test_the_logged_pin_unlocks_a_console_that_runs_code(containers, app_copy):
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    c.wait_until(lambda: logged_pins(c), "the debugger PIN in the log")
    pin = logged_pins(c)[0]

    client = DebuggerClient(c)
    wrong = "000-000-000" if pin != "000-000-000" else "111-111-111"
    assert client.pin_auth(wrong)["auth"] is False
    assert client.pin_auth(pin) == {"auth": True, "exhausted": False}
    # Exactly what the warning says: whoever has the PIN runs code here.
    a, b = random.randint(10**6, 10**7), random.randint(10**6, 10**7)
    assert str(a * b) in client.run(f"print({a} * {b})")
    assert "10001" in client.run("import os; print(os.getuid())")


def test_the_pin_stays_the_same_across_reloads_and_broken_code(containers, app_copy):
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    c.wait_until(lambda: logged_pins(c), "the debugger PIN in the log")
    source = app_copy / "app.py"
    good = source.read_text()
    source.write_text(good + "\n\ndef broken(:\n")
    c.wait_until(lambda: len(logged_pins(c)) >= 2, "a reload onto broken code")
    source.write_text(good + "\n# saved again\n")
    c.wait_until(lambda: len(logged_pins(c)) >= 3, "a reload onto fixed code")
    pins = logged_pins(c)
    assert len(set(pins)) == 1, pins
    c.wait_http("/")
    assert DebuggerClient(c).pin_auth(pins[0])["auth"] is True


def test_a_loud_warning_names_the_risk_and_the_safe_port_binding(containers, app_copy):
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/")
    logs = c.logs()
    port = c.port
    assert "WARNING" in logs and "run code in this container" in logs
    # The tests' containers are on the host's network, where the dev server
    # keeps to loopback (test_debug_host.py has the -p advice of a network
    # of the container's own).
    assert f"It listens on 127.0.0.1:{port} only (the host's network; DEBUG_HOST)" in logs
    assert "DEBUG_HOST=0.0.0.0 would open it" in logs
    # Before the server's own lines, so it is the first thing on screen.
    assert logs.index("WARNING: debug mode") < logs.index("Debugger PIN")


@pytest.mark.parametrize("page", ["docs/develop.md", "docs/zh-CN/develop.md"])
def test_docs_recommend_publishing_on_loopback(page):
    text = (REPO / page).read_text()
    assert "-p 127.0.0.1:5000:5000" in text
    assert "-p 5000:5000" in text, "the page should name the risky form too"


def test_switching_the_pin_off_is_refused(containers):
    result = containers.run_once("-d", "debug", env={"WERKZEUG_DEBUG_PIN": "off"})
    assert result.returncode == 2, result.stderr
    assert "WERKZEUG_DEBUG_PIN=off" in result.stderr
    assert "Serving Flask app" not in result.stdout + result.stderr


def test_the_pin_is_steady_where_python_finds_no_mac(monkeypatch):
    # Python 3.14 in a container: uuid.getnode() is random in each process
    # (the multicast bit set), and Werkzeug's PIN with it; one of the
    # container's own stands in, the same in every server process.
    from flaskbox.debug import server as debug

    monkeypatch.delenv("WERKZEUG_DEBUG_PIN", raising=False)
    monkeypatch.setattr(debug.uuid, "getnode", lambda: random.getrandbits(48) | 1 << 40)
    debug.steady_pin()
    first = os.environ.pop("WERKZEUG_DEBUG_PIN")
    debug.steady_pin()
    assert re.fullmatch(r"\d{3}-\d{3}-\d{3}", first) and os.environ["WERKZEUG_DEBUG_PIN"] == first
    # A real MAC, or a PIN of the user's: Werkzeug's own way, untouched.
    monkeypatch.setenv("WERKZEUG_DEBUG_PIN", "314-159-265")
    debug.steady_pin()
    assert os.environ["WERKZEUG_DEBUG_PIN"] == "314-159-265"
    monkeypatch.delenv("WERKZEUG_DEBUG_PIN")
    monkeypatch.setattr(debug.uuid, "getnode", lambda: 0x0242AC110002)
    debug.steady_pin()
    assert "WERKZEUG_DEBUG_PIN" not in os.environ
