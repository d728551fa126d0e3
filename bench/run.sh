#!/usr/bin/env bash
# The benchmark: bench/run.sh [--smoke] [--out DIR] [--rounds N] [--seconds S]
# Sets up what it needs on a bare Debian/Ubuntu machine (wrk, a virtualenv
# with matplotlib, a Docker engine, a base image), then runs bench/bench.py,
# which builds the image, drives every contender and writes
# bench/results/latest.json and latest.png.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VENV="${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskbox-bench-venv}"

# shellcheck source=deploy/host-tools.sh
. deploy/host-tools.sh

main() {
	host_install wrk
	host_venv "$VENV" bench/requirements.txt
	deploy/start-engine.sh
	local base
	base="${BASE_IMAGE:-$(deploy/base-image.sh)}"
	exec "$VENV/bin/python" bench/bench.py --base-image "$base" "$@"
}

main "$@"
