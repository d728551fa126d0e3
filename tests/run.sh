#!/usr/bin/env bash
# Run the whole test suite against real containers: tests/run.sh [PYTEST ARGS]
# Does all the setup a bare Debian/Ubuntu machine needs: a virtualenv with the
# test tools, curl, wrk, kubectl, docker-compose, iproute2, a Docker engine,
# and base images when none can be pulled. Nothing is ever skipped: no engine
# means a loud failure.
#
# The suite runs once per base image, each with its own image tag:
#   BASE_IMAGE=IMAGE        that base only;
#   TEST_BASES="debian14 default debian13" (the default): Debian's testing
#                           release (Python 3.14, the newest: Ubuntu
#                           26.04's), the Dockerfile's default base
#                           (ubuntu:24.04, or Debian 12, Python 3.11, the
#                           oldest, where it cannot be pulled), and Debian 13
#                           (3.13), in turn (what a full run takes from each:
#                           base_scope, below);
#                           and, when no pytest arguments are given (the full
#                           run, as CI does), debian12-arm64 as well.
# On debian12-arm64 (Debian 12 for arm64, built and run under qemu emulation)
# the default is tests/arch_arm64.py alone: the image builds, serves, passes
# its health check and reloads in debug mode (docs/building.md says why not
# the whole suite). Arguments given run those tests there instead.
#
# With arguments, each base gets one pytest run with them. The full run (no
# arguments) is split into phases, each one pytest run (docs/testing.md):
#   1. in-process: the tests that need no engine and measure no time (-m 'not
#      container and not timed'), once, first, one pytest-xdist worker a
#      CPU (they only compute): they touch no base, and a failure ends the
#      run within a minute, whatever else the machine is doing;
#   2. parallel, per base: the container tests that measure no time, on
#      TEST_WORKERS (default 3: with 4 on 2 CPUs each test took half as
#      long again, and the phase was longer) pytest-xdist workers; meanwhile, in the
#      background, debian12-arm64's base and smoke test (minutes of emulation
#      that would otherwise add to the run);
#   3. serial: the tests marked `timed` (time or load measured on the
#      machine's CPUs), one at a time, with nothing else running: first
#      those that need no engine, once, then per base those that do.
# Each writes JUnit XML (kept in TEST_REPORTS when it names a folder); the
# run ends with each phase's time and the 15 slowest tests of all
# (tests/timings.py).
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
#   benchmark's open-loop client (bench/openloop.c); PostgreSQL and Redis,
#   the servers that tests/test_import_connections.py's apps connect to at
#   import (tests/databases.py starts its own, on loopback); a Docker engine.
setup() {
	host_venv "$VENV" tests/requirements.txt
	host_install wrk curl iproute2 util-linux prometheus nginx gcc libc6-dev postgresql redis-server
	command -v kubectl >/dev/null 2>&1 || host_install kubernetes-client
	command -v docker-compose >/dev/null 2>&1 || host_install docker-compose
	# What deploy/bootstrap-base-image.sh needs where no base can be pulled
	# (qemu for arm64), now: the arm64 bootstrap runs beside the others.
	host_install debootstrap qemu-user-static binfmt-support
	deploy/start-engine.sh
}

# bases [PYTEST ARGS]
#   The names of the bases to run the suite on, one per line.
bases() {
	if [ -n "${BASE_IMAGE:-}" ]; then
		printf '%s\n' "$BASE_IMAGE"
		return 0
	fi
	local base default="debian14 default debian13"
	[ "$#" -gt 0 ] || default+=" debian12-arm64"
	for base in ${TEST_BASES:-$default}; do
		printf '%s\n' "$base"
	done
}

# base_image NAME
#   The image to build on for a base named by bases(), made present
#   (deploy/base-image.sh pulls or bootstraps it).
base_image() {
	if [ -n "${BASE_IMAGE:-}" ]; then
		deploy/base-image.sh
	else
		deploy/base-image.sh "$1"
	fi
}

# pytest_on IMAGE [PYTEST ARGS]
#   pytest against the suite's image built on IMAGE. One image tag per base,
#   so the runs do not rebuild each other's; FLASKBOX_TEST_TAG names a
#   checkout's own (two checkouts at once).
pytest_on() {
	local image="$1"
	shift
	BASE_IMAGE="$image" FLASKBOX_TEST_TAG="${FLASKBOX_TEST_TAG:-flaskbox:test}-${image//[^A-Za-z0-9_.-]/-}" \
		PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "$@"
}

# with_args [PYTEST ARGS]
#   Each base in turn, one pytest run with the arguments given.
with_args() {
	local base image status=0 first=0 started
	for base in "${BASES[@]}"; do
		started="$SECONDS"
		image="$(base_image "$base")"
		log "suite on base image $image"
		# arm64 runs under emulation: its smoke test, unless told otherwise.
		if [ "$#" -eq 0 ] && [[ "$base" == *-arm64 ]]; then
			pytest_on "$image" tests/arch_arm64.py || status=$?
		else
			pytest_on "$image" "$@" || status=$?
		fi
		log "suite on $image: exit code $status after $((SECONDS - started)) s"
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	done
	return "$first"
}

# phase NAME IMAGE [PYTEST ARGS]
#   One pytest run of the full run against the image built on IMAGE (none:
#   in-process), its JUnit XML and time kept in $REPORTS for
#   tests/timings.py. "No test selected" (exit 5) is no failure: a phase
#   may be empty.
phase() {
	local name="$1" image="$2" status=0 started="$SECONDS"
	shift 2
	log "phase $name"
	local args=(--junitxml="$REPORTS/${name//[^A-Za-z0-9_.-]/-}.xml" --durations=5 "$@")
	if [ -n "$image" ]; then
		pytest_on "$image" "${args[@]}" || status=$?
	else
		PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "${args[@]}" || status=$?
	fi
	[ "$status" -ne 5 ] || status=0
	printf '%s\t%s\t%s\n' "$name" "$((SECONDS - started))" "$status" >>"$REPORTS/phases.tsv"
	log "phase $name: exit code $status after $((SECONDS - started)) s"
	return "$status"
}

# arm64_in_background BASE
#   BASE's phase (its base bootstrapped and its image built under emulation
#   on a fresh machine: minutes of one CPU, most of them compiling uWSGI,
#   whose wheel the machine then keeps: tests/uwsgi_wheel.py) as a
#   background job, ARM64_JOB, whose output goes to its own log, shown once
#   the parallel phases are done: they wait on containers more than on the CPUs.
arm64_in_background() {
	log "phase $1 in the background (log: $REPORTS/$1.log)"
	(
		image="$(base_image "$1")"
		phase "$1" "$image" tests/arch_arm64.py
	) >"$REPORTS/$1.log" 2>&1 &
	ARM64_JOB="$!"
}

# What Debian 13 (Python 3.13, between the newest and the oldest) runs of
# its `interpreter` tests: uWSGI's crash reports (#2692, #2710, #2748), the
# hop from nginx and the worker pool's forks, which issue 45 asked proven on
# 3.13 as on 3.14.
DEBIAN13_MODULES=(tests/test_uwsgi_reports.py tests/test_upstream_hop.py tests/test_worker_pool.py)

# base_scope INDEX BASE PHASE
#   What a full run leaves out of PHASE (parallel or serial) on the INDEX-th
#   amd64 base, as a marker expression to add: nothing on the first (the
#   newest Python and nginx), which runs everything. The later ones run what
#   differs between bases, and never the slow tests (soak, swarm, rollouts,
#   bench smoke, 500 streams: load shapes and orchestration, which the first
#   has run): on Debian 13 what differs between Pythons (`interpreter`); on
#   the others (the default base: the oldest Python and nginx) that, and of
#   the untimed tests those of what differs between nginx versions
#   (`nginx`). So .ci/run keeps within its budget, the machine's two CPUs
#   being what bounds it (docs/testing.md).
base_scope() {
	[ "$1" -gt 0 ] || return 0
	if [ "$2" = debian13 ] || [ "$3" = serial ]; then
		printf ' and not slow and interpreter'
	else
		printf ' and not slow and (interpreter or nginx)'
	fi
}

# full_run
#   The phases, in the order the header says.
full_run() {
	local base status=0 first=0 started="$SECONDS" amd64=() images=() i only
	for base in "${BASES[@]}"; do
		[[ "$base" == *-arm64 ]] || amd64+=("$base")
	done
	# A failure here ends the run within a minute: the in-process tier
	# checks what every container would be started from (settings,
	# rendering, the request path), so the container phases would spend
	# half an hour on a known-broken tree. (Not for arm64 alone:
	# TEST_BASES=debian12-arm64 asks for its smoke test.)
	if [ "${#amd64[@]}" -gt 0 ]; then
		phase in-process "" -n "$(nproc)" -m "not container and not timed" || {
			first=$?
			log "the in-process tier failed: no container phase runs (fix it, or run them: tests/run.sh -m container)"
			"$VENV/bin/python" tests/timings.py "$REPORTS" || true
			return "$first"
		}
	fi
	# arm64 first: its bootstrap and build under emulation are the run's
	# longest job, on one CPU. (setup installed what bootstraps need from
	# apt, which one process at a time can use.)
	ARM64_JOB=""
	for base in "${BASES[@]}"; do
		[[ "$base" != *-arm64 ]] || arm64_in_background "$base"
	done
	local made="$SECONDS"
	for base in "${amd64[@]}"; do
		images+=("$(base_image "$base")")
	done
	printf 'base images\t%s\t0\n' "$((SECONDS - made))" >>"$REPORTS/phases.tsv"
	for i in "${!amd64[@]}"; do
		only=()
		[ "${amd64[$i]}" != debian13 ] || only=("${DEBIAN13_MODULES[@]}")
		phase "${amd64[$i]}-parallel" "${images[$i]}" -n "${TEST_WORKERS:-3}" --dist loadscope --no-loadscope-reorder \
			-m "container and not timed$(base_scope "$i" "${amd64[$i]}" parallel)" "${only[@]}" || status=$?
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	done
	if [ -n "$ARM64_JOB" ]; then
		log "waiting for the background phase (arm64)"
		local waited="$SECONDS"
		wait "$ARM64_JOB" || status=$?
		cat "$REPORTS"/*.log >&2
		printf 'waiting for arm64\t%s\t%s\n' "$((SECONDS - waited))" "$status" >>"$REPORTS/phases.tsv"
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	fi
	# The in-process tests that measure time: once (they touch no base),
	# alone, as the container tests that measure time.
	if [ "${#amd64[@]}" -gt 0 ]; then
		phase in-process-serial "" -m "not container and timed" || status=$?
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	fi
	for i in "${!amd64[@]}"; do
		only=()
		[ "${amd64[$i]}" != debian13 ] || only=("${DEBIAN13_MODULES[@]}")
		phase "${amd64[$i]}-serial" "${images[$i]}" -m "container and timed$(base_scope "$i" "${amd64[$i]}" serial)" \
			"${only[@]}" || status=$?
		[ "$status" -eq 0 ] || [ "$first" -ne 0 ] || first="$status"
		status=0
	done
	log "full run: $((SECONDS - started)) s"
	"$VENV/bin/python" tests/timings.py "$REPORTS" || true
	return "$first"
}

main() {
	local status=0 started="$SECONDS"
	mapfile -t BASES < <(bases "$@")
	if [ "$#" -gt 0 ]; then
		setup
		with_args "$@" || status=$?
		exit "$status"
	fi
	if [ -n "${TEST_REPORTS:-}" ]; then
		REPORTS="$TEST_REPORTS"
		mkdir -p "$REPORTS"
	else
		REPORTS="$(mktemp -d)"
		trap 'rm -rf "$REPORTS"' EXIT
	fi
	setup
	printf 'setup\t%s\t0\n' "$((SECONDS - started))" >>"$REPORTS/phases.tsv"
	full_run || status=$?
	exit "$status"
}

main "$@"
