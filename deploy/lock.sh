#!/usr/bin/env bash
# Regenerate the lock files that the Dockerfile installs from with
# `pip install --require-hashes`, one per list of pins:
#   requirements.txt             -> requirements.lock             (/opt/venv)
#   lib/gevent-requirements.txt  -> lib/gevent-requirements.lock  (/opt/venv/gevent)
#   lib/sbom/requirements.txt    -> lib/sbom/requirements.lock    (the SBOM generator, never kept)
# Run it after changing any pin: deploy/lock.sh (needs PyPI, or UV_INDEX_URL).
#   deploy/lock.sh [DIR]   DIR: another copy of the build context to lock
#
# The locks hold the sha256 of every file PyPI has for each pinned version
# (every platform and Python: one lock serves amd64 and arm64, Python 3.11 to
# 3.13), resolved by a pinned uv for all platforms at once (--universal).
# EXCLUDE_NEWER makes a later run produce the same file: files uploaded after
# it (wheels for a new Python, added to an old release) are left out. Move it
# forward when a new pin needs a newer release.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

UV_VERSION=0.13.8
EXCLUDE_NEWER="${EXCLUDE_NEWER:-2026-11-22T00:00:00Z}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/flaskbox-lock-venv"

log() { printf '[lock] %s\n' "$*" >&2; }

# shellcheck source=deploy/host-tools.sh
. deploy/host-tools.sh

# lock PINS LOCK
#   LOCK, hash-pinned, from the pins in PINS. --system-certs: trust the
#   system's CA certificates, as pip does (an intercepting proxy).
lock() {
	local pins="$1" out="$2"
	log "$pins -> $out"
	"$VENV/bin/uv" pip compile --quiet --universal --generate-hashes --system-certs \
		--python-version 3.11 --exclude-newer "$EXCLUDE_NEWER" \
		--custom-compile-command "deploy/lock.sh" --output-file "$out" "$pins"
}

main() {
	host_venv "$VENV" <(printf 'uv==%s\n' "$UV_VERSION")
	cd "${1:-.}"
	lock requirements.txt requirements.lock
	lock lib/gevent-requirements.txt lib/gevent-requirements.lock
	lock lib/sbom/requirements.txt lib/sbom/requirements.lock
}

main "$@"
