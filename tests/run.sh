#!/usr/bin/env bash
# Run the whole test suite against real containers: tests/run.sh [PYTEST ARGS]
# Does all the setup a bare Debian/Ubuntu machine needs: a virtualenv with the
# test tools, a Docker engine, and a base image when BASE_IMAGE can't be
# pulled. Nothing is ever skipped: no engine means a loud failure.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VENV="${TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskbox-test-venv}"

log() { printf '[tests] %s\n' "$*" >&2; }

# ensure_venv: the test tools, pinned in tests/requirements.txt.
ensure_venv() {
	if [ ! -x "$VENV/bin/python" ]; then
		if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
			log "installing python3-venv"
			apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
			rm -rf "$VENV"
			python3 -m venv "$VENV"
		fi
	fi
	"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
}

# ensure_compose: docker-compose, which test_compose.py runs compose.yaml with.
# Debian and Ubuntu package version 1.29; it predates `develop`, which the
# test takes out of the copy it hands over.
ensure_compose() {
	command -v docker-compose >/dev/null && return 0
	log "installing docker-compose"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
}

main() {
	ensure_venv
	ensure_compose
	deploy/start-engine.sh
	BASE_IMAGE="$(deploy/base-image.sh)"
	export BASE_IMAGE
	log "base image: $BASE_IMAGE"
	PATH="$VENV/bin:$PATH" exec "$VENV/bin/python" -m pytest "$@"
}

main "$@"
