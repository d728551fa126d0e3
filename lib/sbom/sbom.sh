#!/usr/bin/env bash
# flaskbox-sbom: write the image's SBOM (CycloneDX JSON) from what is installed
# now: /opt/venv, /opt/venv/gevent and every dpkg package (sbom.py).
#   flaskbox-sbom [--name NAME] [--version VERSION] [--license SPDX] [OUTPUT]
# OUTPUT defaults to /usr/share/doc/flaskbox/sbom.cdx.json; - prints it.
# In an image built FROM this one, run it as root after your own pip and apt
# installs, so that the SBOM lists them too (docs/building.md):
#   RUN flaskbox-sbom --name myapp --version 1.0 --license MIT
# The generator's library (cyclonedx-python-lib) is installed, hash-checked
# from requirements.lock, into a temporary directory removed on exit: it
# never stays in the image. SBOM_TOOL names a directory where it already is
# (the Dockerfile's build stage installs it there, with its own index).
set -Eeuo pipefail

HERE="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
OUTPUT_DEFAULT=/usr/share/doc/flaskbox/sbom.cdx.json
PYTHON=/opt/venv/bin/python

log() { printf '[flaskbox-sbom] %s\n' "$*" >&2; }

# install_tool DIR
#   cyclonedx-python-lib and its dependencies into DIR, every file checked
#   against the lock's hashes, wheels only (nothing is compiled).
install_tool() {
	"$PYTHON" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
		--root-user-action=ignore --require-hashes --no-deps --only-binary :all: \
		--target "$1" -r "$HERE/requirements.lock"
}

main() {
	local args=() output="$OUTPUT_DEFAULT"
	while [ "$#" -gt 0 ]; do
		case "$1" in
			--name | --version | --license) args+=("$1" "${2?$1 needs a value}"); shift 2 ;;
			*) output="$1"; shift ;;
		esac
	done
	local tool="${SBOM_TOOL:-}" scratch=""
	if [ -z "$tool" ]; then
		scratch="$(mktemp -d /tmp/flaskbox-sbom.XXXXXX)"
		# shellcheck disable=SC2064 # expand now: the path is fixed
		trap "rm -rf '$scratch'" EXIT
		tool="$scratch"
		install_tool "$tool"
	fi
	if [ "$output" = - ]; then
		PYTHONPATH="$tool" "$PYTHON" -S "$HERE/sbom.py" "${args[@]}" -
		return 0
	fi
	mkdir -p "$(dirname "$output")"
	# -S: only the generator's own library and the standard library are
	# importable, whatever the venv holds; what it describes it reads by path.
	PYTHONPATH="$tool" "$PYTHON" -S "$HERE/sbom.py" "${args[@]}" "$output.tmp"
	chmod 0644 "$output.tmp"
	mv "$output.tmp" "$output"
	log "wrote $output"
}

main "$@"
