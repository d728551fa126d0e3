"""distutils works on every base, whatever the app's dependencies: Python
3.12 removed it and Debian's 3.11 ships it in a package the image lacks, so
the image keeps setuptools, whose shim provides it (requirements.txt). An
app with no dependencies of its own that imports distutils.util is served
in both modes."""

import uuid

import pytest

from helpers import docker, share_with_container

APP = '''import sys
from distutils.util import strtobool

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"{TOKEN} {bool(strtobool('yes'))} {sys.modules['distutils'].__file__}"
'''


def test_distutils_comes_from_setuptools(runtime_image):
    out = docker("run", "--rm", "--network", "host", "--entrypoint", "python", runtime_image, "-c",
                 "import distutils.util as u; print(bool(u.strtobool('on')), u.__file__)").stdout
    assert out.startswith("True /opt/venv/lib/python3") and "/setuptools/_distutils/util.py" in out, out


@pytest.mark.parametrize("mode_args", [(), ("-d", "debug")], ids=["production", "debug"])
def test_an_app_importing_distutils_is_served(containers, tmp_path, mode_args):
    token = uuid.uuid4().hex
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP.replace("TOKEN", repr(token)))
    tmp_path.chmod(0o755)
    share_with_container(app_dir)
    c = containers.run(*mode_args, docker_args=("-v", f"{app_dir}:/app:ro"))
    body = c.wait_http("/").text
    assert body.startswith(f"{token} True ") and "setuptools/_distutils" in body, body
