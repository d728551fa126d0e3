#!/usr/bin/env bash
# Run the whole test suite against real containers: tests/run.sh [PYTEST ARGS]
# Does all the setup a bare Debian/Ubuntu machine needs: a virtualenv with the
# test tools, curl, wrk, kubectl, docker-compose, iproute2, a Docker engine,
# and base images when none can be pulled. Nothing is ever skipped: no engine
# means a loud failure.
#
# The suite runs once per base image, each with its own image tag:
#   BASE_IMAGE=IMAGE        that base only;
#   TEST_BASES="default debian13" (the default): the Dockerfile's default base
#                           (ubuntu:24.04, or Debian 12 where it cannot be
#                           pulled) and Debian 13 (Python 3.13), in turn.
# The exit code is the first failing run's.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VENV="${TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskbox-test-venv}"

log() { printf '[tests] %s\n' "$*" >&2; }

# shellcheck source=deploy/host-tools.sh
. deploy/host-tools.sh

# setup
#   Test tools, pinned; wrk for the benchmark harness's smoke test, curl as a
#   client; prometheus (and its promtool) scrapes a container in
#   tests/test_metrics.py; kubectl renders the Kubernetes overlays offline;
#   docker-compose runs compose.yaml; ip (iproute2) and nsenter (util-linux)
#   put test_swarm.py's own engine in a network namespace; a Docker engine.
setup() {
	host_venv "$VENV" tests/requirements.txt
	host_install wrk curl iproute2 util-linux prometheus
	command -v kubectl >/dev/null 2>&1 || host_install kubernetes-client
	command -v docker-compose >/dev/null 2>&1 || host_install docker-compose
	deploy/start-engine.sh
}

# bases
#   The base images to run the suite on, one per line.
bases() {
	if [ -n "${BASE_IMAGE:-}" ]; then
		deploy/base-image.sh
		return 0
	fi
	local base
	for base in ${TEST_BASES:-default debian13}; do
		deploy/base-image.sh "$base"
	done
}

main() {
	setup
	local base status=0 first=0 list
	list="$(bases)"
	for base in $list; do
		log "suite on base image $base"
		# One image tag per base, so the runs do not rebuild each other's;
		# FLASKBOX_TEST_TAG names a checkout's own (two checkouts at once).
		BASE_IMAGE="$base" FLASKBOX_TEST_TAG="${FLASKBOX_TEST_TAG:-flaskbox:test}-${base//[^A-Za-z0-9_.-]/-}" \
			PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "$@" || status=$?
		log "suite on $base: exit code $status"
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	done
	exit "$first"
}

main "$@"
