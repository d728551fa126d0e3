"""The image's software bill of materials, in CycloneDX JSON, for scanners
(Grype, Trivy, pip-audit) and people: every Python package of the venv and
of gevent's directory, and every OS package dpkg knows, with exact versions
and the licences each declares: a Python package's from its metadata, an OS
package's from its Debian copyright file (/usr/share/doc/PACKAGE/copyright,
named there as Debian names them), and the image's own (--license).

Run by sbom.sh (at build time, and in images built FROM this one), with
cyclonedx-python-lib on sys.path from a throwaway directory: the library
builds and serializes the document, this script only says what is installed.
Components are sorted, so two runs over the same contents differ only in the
serial number and the timestamp (docs/building.md).

    python3 sbom.py OUTPUT [--name NAME] [--version VERSION] [--license SPDX-EXPRESSION]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from cyclonedx.builder.this import this_component
from cyclonedx.factory.license import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

VENV = Path("/opt/venv")
# WORKER_CLASS=gevent's packages (Dockerfile, lib/gevent-requirements.lock).
GEVENT = VENV / "gevent"
OS_RELEASE = Path("/etc/os-release")
# Which Python environment a package is in: the same name may be in both
# (an app that pins its own gevent), and scanners should see both copies.
ENVIRONMENT = "flaskbox:python:environment"
# dpkg-query's fields, tab-separated: ${db:Status-Abbrev} tells installed
# packages ("ii ") from removed ones dpkg still knows ("rc "); ${source:Package}
# and ${source:Version} name the source package, by which Debian and Ubuntu
# publish advisories.
DPKG_FORMAT = ("${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t"
               "${source:Package}\t${source:Version}\n")


def canonical(name: str) -> str:
    """PEP 503 normalized name, as a pypi purl spells it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_licenses(meta) -> list:
    """PEP 639's License-Expression, else the License field when it is a
    name rather than a whole license text, else the licence classifiers'
    names ("License :: OSI Approved :: BSD License": BSD License)."""
    factory = LicenseFactory()
    expression = meta.get("License-Expression")
    if expression:
        return [factory.make_from_string(expression)]
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() != "UNKNOWN":
        return [factory.make_from_string(text)]
    classifiers = [value.split("::")[-1].strip() for value in meta.get_all("Classifier") or []
                   if value.startswith("License ::") and value.count("::") >= 2]
    return [factory.make_with_name(name) for name in dict.fromkeys(classifiers)]


DOC = Path("/usr/share/doc")


def copyright_file(package: str) -> Path | None:
    path = DOC / package / "copyright"
    return path if path.is_file() else None


def deb_license_names(copyright_text: str) -> list[str]:
    """The licence names of a machine-readable Debian copyright file (DEP-5:
    each paragraph's `License:` field, first line), in order, once each;
    none for a free-form file."""
    if not copyright_text.startswith("Format:"):
        return []
    names: list[str] = []
    for line in copyright_text.splitlines():
        if line.startswith("License:"):
            name = line[len("License:"):].strip()
            if name and name not in names:
                names.append(name)
    return names


def deb_licenses(package: str) -> list:
    """Named licences (Debian's short names, such as GPL-2+ or Expat, are not
    all SPDX identifiers, so none is passed off as one)."""
    path = copyright_file(package)
    if path is None:
        return []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    factory = LicenseFactory()
    return [factory.make_with_name(name) for name in deb_license_names(text)]


def python_components(environment: Path) -> list[Component]:
    """One component per distribution installed in `environment` (a venv, or a
    directory pip installed into with --target)."""
    paths = sorted(str(p) for p in environment.glob("lib/python3*/site-packages")) or [str(environment)]
    components = []
    for dist in metadata.distributions(path=paths):
        name, version = dist.metadata["Name"], dist.version
        purl = PackageURL(type="pypi", name=canonical(name), version=version)
        components.append(Component(
            type=ComponentType.LIBRARY, name=name, version=version, purl=purl,
            bom_ref=f"{purl.to_string()}#{environment}",
            licenses=python_licenses(dist.metadata),
            properties=[Property(name=ENVIRONMENT, value=str(environment))],
        ))
    return components


def os_release(path: Path = OS_RELEASE) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields


def release_version(release: dict[str, str]) -> str:
    """The distribution's version: its number, or, for a release still in
    testing (Debian testing has no VERSION_ID), its code name."""
    return release.get("VERSION_ID") or release.get("VERSION_CODENAME", "")


def dpkg_components(release: dict[str, str]) -> list[Component]:
    """One component per installed OS package. The purl follows Syft's and
    Trivy's: distro=debian-12, and upstream= naming the source package
    when it differs, which is what advisories are matched against."""
    listing = subprocess.run(["dpkg-query", "-W", "-f", DPKG_FORMAT], check=True,
                             capture_output=True, text=True).stdout
    distro = f"{release['ID']}-{release_version(release)}".rstrip("-")
    components = []
    for line in listing.splitlines():
        status, name, version, arch, source, source_version = line.split("\t")
        if status[1:2] != "i":
            continue  # removed, only its configuration files are left
        qualifiers = {"arch": arch, "distro": distro}
        if source and source != name:
            qualifiers["upstream"] = source if source_version == version else f"{source}@{source_version}"
        elif source_version and source_version != version:
            qualifiers["upstream"] = f"{name}@{source_version}"
        purl = PackageURL(type="deb", namespace=release["ID"], name=name, version=version,
                          qualifiers=qualifiers)
        origin = f"{source or name} {source_version or version}"
        properties = [Property(name="flaskbox:dpkg:source", value=origin)]
        copyright_path = copyright_file(name)
        if copyright_path is not None:
            properties.append(Property(name="flaskbox:dpkg:copyright", value=str(copyright_path)))
        components.append(Component(type=ComponentType.LIBRARY, name=name, version=version, purl=purl,
                                    bom_ref=purl.to_string(), properties=properties,
                                    licenses=deb_licenses(name)))
    return components


def os_component(release: dict[str, str]) -> Component:
    """The distribution itself: Grype and Trivy read it to pick the advisories
    for the OS packages."""
    return Component(type=ComponentType.OPERATING_SYSTEM, name=release["ID"],
                     version=release_version(release), bom_ref=f"os:{release['ID']}",
                     description=release.get("PRETTY_NAME"))


def timestamp() -> datetime:
    """SOURCE_DATE_EPOCH when set (reproducible-builds.org), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(tz=UTC)


def build(name: str, version: str, license_expression: str = "") -> Bom:
    release = os_release()
    licenses = [LicenseFactory().make_from_string(license_expression)] if license_expression else []
    subject = Component(type=ComponentType.CONTAINER, name=name, version=version, bom_ref=f"image:{name}",
                        licenses=licenses)
    bom = Bom(metadata=BomMetaData(component=subject, timestamp=timestamp()))
    bom.metadata.tools.components.add(this_component())
    components = [os_component(release), *python_components(VENV), *python_components(GEVENT),
                  *dpkg_components(release)]
    for component in components:
        bom.components.add(component)
        bom.register_dependency(subject, [component])
    return bom


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="where to write the SBOM (- for stdout)")
    parser.add_argument("--name", default="flaskbox", help="the image's name (default flaskbox)")
    parser.add_argument("--version", default="dev", help="the image's version (default dev)")
    parser.add_argument("--license", default="",
                        help="the image's own licence, an SPDX expression (default: none stated)")
    args = parser.parse_args(argv)
    document = JsonV1Dot6(build(args.name, args.version, args.license)).output_as_string(indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(document)
    else:
        Path(args.output).write_text(document)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
