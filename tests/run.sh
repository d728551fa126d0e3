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
#                           pulled) and Debian 13 (Python 3.13, without
#                           the tests marked slow), in turn;
#                           and, when no pytest arguments are given (the full
#                           run, as CI does), debian12-arm64 last.
# On debian12-arm64 (Debian 12 for arm64, built and run under qemu emulation)
# the default is tests/arch_arm64.py alone: the image builds, serves, passes
# its health check and reloads in debug mode (docs/building.md says why not
# the whole suite). Arguments given run those tests there instead.
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
#   docker-compose runs compose.yaml; ip (iproute2), nsenter and unshare
#   (util-linux) put test_swarm.py's and test_swarm_nodes.py's own engines
#   in namespaces; nginx is the load balancer in front of the latter's three
#   nodes (the test runs its own, in its own namespace); gcc builds the
#   benchmark's open-loop client (bench/openloop.c); a Docker engine.
setup() {
	host_venv "$VENV" tests/requirements.txt
	host_install wrk curl iproute2 util-linux prometheus nginx gcc libc6-dev
	command -v kubectl >/dev/null 2>&1 || host_install kubernetes-client
	command -v docker-compose >/dev/null 2>&1 || host_install docker-compose
	deploy/start-engine.sh
}

# bases [PYTEST ARGS]
#   The base images to run the suite on, one per line.
bases() {
	if [ -n "${BASE_IMAGE:-}" ]; then
		deploy/base-image.sh
		return 0
	fi
	local base default="default debian13"
	[ "$#" -gt 0 ] || default+=" debian12-arm64"
	for base in ${TEST_BASES:-$default}; do
		deploy/base-image.sh "$base"
	done
}

main() {
	setup
	local base status=0 first=0 list args started runs=0
	list="$(bases "$@")"
	for base in $list; do
		args=("$@")
		# arm64 runs under emulation: its smoke test, unless told otherwise.
		if [ "$#" -eq 0 ] && [[ "$base" == *-arm64 ]]; then
			args=(tests/arch_arm64.py)
		# A full run's later bases leave out the slow modules (soak, swarm,
		# rollouts, bench smoke, 500 streams: load shapes and orchestration,
		# which the first base runs), so .ci/run keeps within its budget.
		elif [ "$#" -eq 0 ] && [ "$runs" -gt 0 ]; then
			args=(-m 'not slow')
		fi
		runs=$((runs + 1))
		log "suite on base image $base"
		started="$SECONDS"
		# One image tag per base, so the runs do not rebuild each other's;
		# FLASKBOX_TEST_TAG names a checkout's own (two checkouts at once).
		BASE_IMAGE="$base" FLASKBOX_TEST_TAG="${FLASKBOX_TEST_TAG:-flaskbox:test}-${base//[^A-Za-z0-9_.-]/-}" \
			PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "${args[@]}" || status=$?
		log "suite on $base: exit code $status after $((SECONDS - started)) s"
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	done
	exit "$first"
}

main "$@"
