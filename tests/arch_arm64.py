"""arm64: the image built for arm64 (on Debian 12 for arm64, under qemu user
emulation on an amd64 machine) serves a request, passes its health check,
and reloads an edit in debug mode.

Not a test_*.py module: tests/run.sh runs it once per full run, after the
suites, with BASE_IMAGE=local/debian:bookworm-arm64 (deploy/base-image.sh
debian12-arm64 bootstraps it), so that the session's image is the arm64 one:
    TEST_BASES=debian12-arm64 tests/run.sh tests/arch_arm64.py
Run on any other base it fails at once: it never passes without arm64.
The image is the Dockerfile's, built for arm64; its uWSGI wheel is the one
the machine's last arm64 build compiled, when made from the same lock and
packages (tests/uwsgi_wheel.py), else compiled by this build."""

import json
import re
import uuid

import pytest

from helpers import docker, share_with_container

# Emulation runs arm64 code 5 to 20 times slower: a start takes seconds.
START_TIMEOUT = 180
RELOAD_TIMEOUT = 60

pytestmark = pytest.mark.timeout(2700)  # the first test builds the image


def test_the_image_is_arm64(image, containers):
    inspected = json.loads(docker("image", "inspect", image).stdout)[0]
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "arm64"), inspected["Architecture"]
    result = containers.run_once("uname", "-m", timeout=START_TIMEOUT)
    assert result.stdout.strip() == "aarch64", result.stdout + result.stderr
    # Its SBOM lists arm64 packages (or architecture-independent ones).
    sbom = json.loads(docker("run", "--rm", "--network", "host", "--entrypoint", "cat", image,
                             "/usr/share/doc/flaskbox/sbom.cdx.json").stdout)
    arches = {re.search(r"[?&]arch=([^&]+)", c["purl"]).group(1) for c in sbom["components"]
              if c.get("purl", "").startswith("pkg:deb/")}
    assert arches == {"arm64", "all"}, arches


def test_production_serves_and_passes_its_health_check(containers):
    c = containers.run()
    token = uuid.uuid4().hex[:12]
    resp = c.wait_http(f"/?name={token}", timeout=START_TIMEOUT, interval=0.5)
    assert f"Hello, {token}!" in resp.text
    assert resp.headers["server"] == "nginx"
    assert c.request("/api/hello?name=arm").json() == {"message": "Hello, arm!"}
    c.wait_healthy(timeout=START_TIMEOUT)
    assert c.exec("healthcheck.sh").returncode == 0


def test_debug_mode_reloads_an_edit(containers, app_copy):
    c = containers.run("-d", "debug", docker_args=("-v", f"{app_copy}:/app"))
    c.wait_http("/api/hello", timeout=START_TIMEOUT, interval=0.5)
    token = f"Hi{uuid.uuid4().hex[:8]}"
    source = app_copy / "app.py"
    source.write_text(source.read_text().replace('f"Hello, {name}!"', f'f"{token}, {{name}}!"', 1))
    share_with_container(source)

    def served():
        resp = c.request("/api/hello?name=Ann", timeout=10)
        return resp.status == 200 and f"{token}, Ann!" in resp.text

    c.wait_until(served, "the edited module", timeout=RELOAD_TIMEOUT, interval=0.2)
