#!/usr/bin/env bash
# The benchmark: bench/run.sh [--smoke | --levers | --features | --wrapper | --traffic | --profile | --latency | --floor | --timeline --rate R | --prices | --account | --pages [--ballast MB] | --overload | --tail | --apps [--flaskbox-env NAME=VALUE] | --interpreter [--also-base BASE_IMAGE]] [--before COMMIT] [--cpus N] [--out DIR] [--rounds N] [--seconds S]
# Sets up what it needs on a bare Debian/Ubuntu machine (wrk, a virtualenv
# with matplotlib, a Docker engine, base images), then runs bench/bench.py,
# which builds the image, drives every contender and writes
# bench/results/latest.json and latest.png.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VENV="${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskbox-bench-venv}"

# shellcheck source=deploy/host-tools.sh
. deploy/host-tools.sh

main() {
	host_install wrk
	# --profile samples every CPU with perf (Debian's package; on Ubuntu,
	# linux-tools for the running kernel).
	case " $* " in *" --profile "*) command -v perf >/dev/null || host_install linux-perf ;; esac
	# --latency and --pages compile their client (bench/openloop.c).
	case " $* " in *" --latency "* | *" --floor "* | *" --rate "* | *" --pages "*)
		command -v cc >/dev/null || host_install gcc libc6-dev
		;;
	esac
	host_venv "$VENV" bench/requirements.txt
	deploy/start-engine.sh
	local base second
	base="$(deploy/base-image.sh)"
	# flaskbox on Debian 13 (Python 3.13) joins the run, so that a regression
	# on the newer Python shows up next to the default base's figures.
	second="$(deploy/base-image.sh "${SECOND_BASE:-debian13}")"
	exec "$VENV/bin/python" bench/bench.py --base-image "$base" --second-base "$second" "$@"
}

main "$@"
