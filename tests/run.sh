#!/usr/bin/env bash
# Run the whole test suite against real containers: tests/run.sh [PYTEST ARGS]
# Does all the setup a bare Debian/Ubuntu machine needs: a virtualenv with the
# test tools, kubectl, docker-compose, a Docker engine, and a base image when BASE_IMAGE
# can't be pulled. Nothing is ever skipped: no engine means a loud failure.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VENV="${TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskbox-test-venv}"

log() { printf '[tests] %s\n' "$*" >&2; }

# shellcheck source=deploy/host-tools.sh
. deploy/host-tools.sh

main() {
	# The test tools, pinned; wrk for the benchmark harness's smoke test, curl as a client;
	# kubectl renders the Kubernetes overlays offline (`kubectl kustomize`).
	host_venv "$VENV" tests/requirements.txt
	host_install wrk curl
	command -v kubectl >/dev/null 2>&1 || host_install kubernetes-client
	# docker-compose runs compose.yaml in test_compose.py.
	command -v docker-compose >/dev/null 2>&1 || host_install docker-compose
	deploy/start-engine.sh
	BASE_IMAGE="$(deploy/base-image.sh)"
	export BASE_IMAGE
	log "base image: $BASE_IMAGE"
	PATH="$VENV/bin:$PATH" exec "$VENV/bin/python" -m pytest "$@"
}

main "$@"
