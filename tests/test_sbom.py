"""The SBOM inside the image (/usr/share/doc/flaskbox/sbom.cdx.json): valid
CycloneDX that lists exactly what is installed, every Python package of the
venv and of gevent's directory and every OS package, with exact versions; an
image built FROM this one rewrites it with `flaskbox-sbom`, and the tool that
writes it never stays in an image."""

import json
import re
import uuid

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from helpers import build_image, docker

SBOM = "/usr/share/doc/flaskbox/sbom.cdx.json"
ENVIRONMENT = "flaskbox:python:environment"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run_in(image: str, script: str) -> str:
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "bash", image, "-c", script)
    return result.stdout


def read_sbom(image: str) -> dict:
    return json.loads(run_in(image, f"cat {SBOM}"))


def python_packages(sbom: dict, environment: str) -> dict[str, str]:
    """canonical name -> version, of the SBOM's packages in one environment."""
    return {canonical(c["name"]): c["version"] for c in sbom["components"]
            if {"name": ENVIRONMENT, "value": environment} in c.get("properties", [])}


def deb_packages(sbom: dict) -> dict[str, tuple[str, str]]:
    """name -> (version, arch) of the SBOM's OS packages, from their purls."""
    found = {}
    for c in sbom["components"]:
        if c.get("purl", "").startswith("pkg:deb/"):
            arch = re.search(r"[?&]arch=([^&]+)", c["purl"]).group(1)
            found[c["name"]] = (c["version"], arch)
    return found


def freeze(text: str) -> dict[str, str]:
    pins = dict(line.split("==", 1) for line in text.splitlines() if "==" in line)
    assert len(pins) == len(text.splitlines()), f"not all name==version:\n{text}"
    return {canonical(name): version for name, version in pins.items()}


def installed(image: str) -> dict:
    """What pip and dpkg say is installed in the image, as the SBOM should."""
    venv = run_in(image, "/opt/venv/bin/pip freeze --all --disable-pip-version-check")
    gevent = run_in(image, "/opt/venv/bin/pip freeze --path /opt/venv/gevent --disable-pip-version-check")
    dpkg = run_in(image, "dpkg-query -W -f "
                         "'${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n'")
    return {
        "/opt/venv": freeze(venv),
        "/opt/venv/gevent": freeze(gevent),
        # Installed packages only ("ii ", "hi "), not removed ones dpkg still knows.
        "dpkg": {name: (version, arch) for status, name, version, arch in
                 (line.split("\t") for line in dpkg.splitlines()) if status[1] == "i"},
    }


def components(sbom: dict) -> list[str]:
    """Everything of each component but what differs between two runs."""
    return sorted(json.dumps(c, sort_keys=True) for c in sbom["components"])


@pytest.fixture(scope="module")
def sbom(image) -> dict:
    return read_sbom(image)


def test_the_sbom_is_valid_cyclonedx(image):
    text = run_in(image, f"cat {SBOM}")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    sbom = json.loads(text)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert sbom["metadata"]["component"]["type"] == "container"
    assert sbom["metadata"]["component"]["name"] == "flaskbox"


def test_the_sbom_lists_exactly_what_pip_and_dpkg_say_is_installed(image, sbom):
    actual = installed(image)
    # Flask, uWSGI and pip itself in the venv; gevent's four in its directory.
    assert {"flask", "uwsgi", "pip", "setuptools"} <= set(actual["/opt/venv"])
    assert {"gevent", "greenlet", "zope-event", "zope-interface"} <= set(actual["/opt/venv/gevent"])
    assert {"nginx", "python3", "tini", "libc6"} <= set(actual["dpkg"])
    assert python_packages(sbom, "/opt/venv") == actual["/opt/venv"]
    assert python_packages(sbom, "/opt/venv/gevent") == actual["/opt/venv/gevent"]
    assert deb_packages(sbom) == actual["dpkg"]


def test_scanners_can_match_the_sbom(image, sbom):
    """What Grype and Trivy match advisories with: the distribution as an
    operating-system component, every deb purl naming it, pypi purls."""
    release = dict(line.split("=", 1) for line in run_in(image, "cat /etc/os-release").splitlines()
                   if "=" in line)
    # Debian testing has no version number yet: its code name stands in.
    distro, version = release["ID"], release.get("VERSION_ID", release.get("VERSION_CODENAME", "")).strip('"')
    systems = [c for c in sbom["components"] if c["type"] == "operating-system"]
    assert [(c["name"], c["version"]) for c in systems] == [(distro, version)]
    for c in sbom["components"]:
        if c["type"] == "operating-system":
            continue
        purl = PackageURL.from_string(c["purl"])
        assert purl.version == c["version"], c
        if purl.type == "deb":
            assert (purl.namespace, purl.name, purl.qualifiers["distro"]) == \
                (distro, c["name"], f"{distro}-{version}"), c
        else:
            assert (purl.type, purl.name) == ("pypi", canonical(c["name"])), c
    # libc6 is built from the glibc source package, by which Debian and
    # Ubuntu publish advisories: its purl says so.
    libc6 = next(c for c in sbom["components"] if c["name"] == "libc6")
    assert PackageURL.from_string(libc6["purl"]).qualifiers["upstream"] == "glibc", libc6


def assert_no_sbom_tool(image: str) -> None:
    found = run_in(image, "ls -d /opt/sbom-tool /tmp/flaskbox-sbom.* 2>/dev/null; "
                          "/opt/venv/bin/python -c 'import cyclonedx' 2>&1 | tail -n 1")
    assert found.strip() == "ModuleNotFoundError: No module named 'cyclonedx'", found


def test_the_sbom_tool_never_stays_in_the_image(image):
    assert_no_sbom_tool(image)


@pytest.fixture(scope="module")
def derived(runtime_image, tmp_path_factory):
    """An image built FROM the runtime image that adds a Python package and
    rewrites the SBOM, as docs/building.md tells users to."""
    context = tmp_path_factory.mktemp("derived-sbom")
    (context / "Dockerfile").write_text(
        f"FROM {runtime_image}\nUSER 0\n"
        "RUN pip install --no-cache-dir six==1.16.0 && flaskbox-sbom --name myapp --version 7.0\n"
        "USER 10001:0\n")
    tag = f"flaskbox-sbom-derived:{uuid.uuid4().hex[:12]}"
    build_image(context, tag)
    yield tag
    docker("rmi", "-f", tag, check=False)


def test_an_image_built_from_this_one_rewrites_the_sbom(runtime_image, derived, sbom):
    fresh = read_sbom(derived)
    assert fresh["metadata"]["component"]["name"] == "myapp"
    assert fresh["metadata"]["component"]["version"] == "7.0"
    assert fresh["serialNumber"] != sbom["serialNumber"]
    # Exactly one more component, six, in the venv: a fresh run over the
    # same contents lists the same components, byte for byte.
    six = [c for c in fresh["components"] if c["name"] == "six"]
    assert [c["version"] for c in six] == ["1.16.0"]
    assert python_packages(fresh, "/opt/venv")["six"] == "1.16.0"
    assert components({**fresh, "components": [c for c in fresh["components"] if c["name"] != "six"]}) \
        == components(read_sbom(runtime_image))
    assert python_packages(fresh, "/opt/venv") == installed(derived)["/opt/venv"]
    # The generator's library was removed in the same layer.
    assert_no_sbom_tool(derived)


def test_the_sbom_names_the_licences(sbom):
    """flaskbox's own (MIT, the LICENSES build argument) on the image, and
    each bundled component's: a Python package's from its metadata, an OS
    package's from its Debian copyright file, whose path it also gives."""
    assert sbom["metadata"]["component"]["licenses"] == [{"license": {"id": "MIT"}}]
    by_name = {c["name"]: c for c in sbom["components"]}

    def licences(name: str) -> set[str]:
        found = set()
        for entry in by_name[name].get("licenses", []):
            found |= {entry["license"].get("id") or entry["license"].get("name")} if "license" in entry \
                else {entry["expression"]}
        return found

    assert licences("Flask") == {"BSD-3-Clause"}
    assert "BSD License" in licences("Jinja2")  # from its classifiers: its metadata has no License field
    assert "Expat" in licences("tini") and "GPL-3+" in licences("bash")
    python = [c for c in sbom["components"] if c.get("purl", "").startswith("pkg:pypi/")]
    assert all(c.get("licenses") for c in python), [c["name"] for c in python if not c.get("licenses")]
    debs = [c for c in sbom["components"] if c.get("purl", "").startswith("pkg:deb/")]
    for c in debs:
        where = [p["value"] for p in c.get("properties", []) if p["name"] == "flaskbox:dpkg:copyright"]
        assert where == [f"/usr/share/doc/{c['name']}/copyright"], c
    # Free-form copyright files name no licence the SBOM could copy; most are machine-readable.
    assert sum(bool(c.get("licenses")) for c in debs) > len(debs) * 2 // 3
