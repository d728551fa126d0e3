#!/usr/bin/env bash
# Make a Docker engine available on a bare Debian/Ubuntu machine (CI, or a
# developer box with only the docker client). Installs docker.io when dockerd
# is missing, starts it without a bridge (this network forbids one) and waits
# until `docker info` answers. Fails loudly: tests must never be skipped
# because there was no engine.
set -Eeuo pipefail

: "${DOCKERD_LOG:=/tmp/dockerd.log}"
: "${ENGINE_WAIT_SECONDS:=60}"

log() { printf '[start-engine] %s\n' "$*" >&2; }

# shellcheck source=deploy/host-tools.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/host-tools.sh"

# engine_up: true when a daemon already answers.
engine_up() { docker info >/dev/null 2>&1; }

# start_dockerd: background daemon with no bridge and no iptables rules,
# because containers here must use --network host.
start_dockerd() {
	log "starting dockerd (log: $DOCKERD_LOG)"
	nohup dockerd --bridge=none --iptables=false --ip6tables=false >"$DOCKERD_LOG" 2>&1 &
	local waited=0
	until engine_up; do
		if [ "$waited" -ge "$ENGINE_WAIT_SECONDS" ]; then
			log "dockerd did not answer within ${ENGINE_WAIT_SECONDS}s; its log follows"
			tail -n 50 "$DOCKERD_LOG" >&2 || true
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done
	log "engine ready after ${waited}s"
}

main() {
	if engine_up; then
		log "engine already running"
		return 0
	fi
	command -v dockerd >/dev/null 2>&1 || host_install docker.io
	start_dockerd
}

main "$@"
