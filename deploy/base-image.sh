#!/usr/bin/env bash
# Prints the base image to build on, making sure it is present:
#   1. BASE_IMAGE, if set (pulled if missing; bootstrapped if it is the
#      local Debian tag below);
#   2. else the Dockerfile's default (ubuntu:24.04), if it can be pulled;
#   3. else a Debian base bootstrapped from the Debian archive, for machines
#      that reach no container registry.
# Used by deploy/up.sh and tests/run.sh. Messages go to stderr.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

LOCAL_BASE=local/debian:bookworm

log() { printf '[base-image] %s\n' "$*" >&2; }

# present IMAGE: true when IMAGE is here or can be pulled.
present() {
	docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1" >/dev/null 2>&1
}

main() {
	local image="${BASE_IMAGE:-}"
	if [ -z "$image" ]; then
		image="$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)"
		if ! present "$image"; then
			log "cannot pull $image; using a Debian base built from the Debian archive"
			image="$LOCAL_BASE"
		fi
	fi
	if ! present "$image"; then
		if [ "$image" != "$LOCAL_BASE" ]; then
			log "BASE_IMAGE=$image is neither here nor pullable"
			exit 1
		fi
		deploy/bootstrap-base-image.sh "$LOCAL_BASE"
	fi
	printf '%s\n' "$image"
}

main "$@"
