#!/usr/bin/env bash
# Prints the base image to build on, making sure it is present:
#   deploy/base-image.sh            the default base:
#                                     1. BASE_IMAGE, if set (pulled if missing);
#                                     2. else the Dockerfile's (ubuntu:24.04), if it can be pulled;
#                                     3. else Debian 12, as below.
#   deploy/base-image.sh debian12   debian:bookworm if it can be pulled, else one
#                                   bootstrapped from the Debian archive (local/debian:bookworm)
#   deploy/base-image.sh debian13   the same for Debian 13 (debian:trixie, local/debian:trixie)
#   deploy/base-image.sh debian14   the same for Debian's testing release, forky (Python
#                                   3.14, as Ubuntu 26.04): debian:forky, local/debian:forky
#   deploy/base-image.sh debian12-arm64
#                                   Debian 12 for arm64, bootstrapped here under qemu
#                                   emulation (local/debian:bookworm-arm64): a pulled
#                                   debian:bookworm would replace this machine's own
# Used by deploy/up.sh, tests/run.sh and bench/run.sh. Messages go to stderr.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

log() { printf '[base-image] %s\n' "$*" >&2; }

# present IMAGE: true when IMAGE is here or can be pulled.
present() {
	docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1" >/dev/null 2>&1
}

# debian SUITE: debian:SUITE from a registry, or bootstrapped as local/debian:SUITE.
debian() {
	local suite="$1"
	if present "debian:$suite"; then
		printf 'debian:%s\n' "$suite"
		return 0
	fi
	present "local/debian:$suite" || deploy/bootstrap-base-image.sh "local/debian:$suite" "$suite"
	printf 'local/debian:%s\n' "$suite"
}

main() {
	case "${1:-default}" in
		debian12) debian bookworm ;;
		debian13) debian trixie ;;
		debian14) debian forky ;;
		debian12-arm64)
			present local/debian:bookworm-arm64 ||
				ARCH=arm64 deploy/bootstrap-base-image.sh local/debian:bookworm-arm64 bookworm
			printf 'local/debian:bookworm-arm64\n'
			;;
		default)
			local image="${BASE_IMAGE:-}"
			if [ -n "$image" ]; then
				if ! present "$image"; then
					# The names this script itself gives to bootstrapped bases.
					case "$image" in
						local/debian:bookworm | local/debian:trixie | local/debian:forky)
							deploy/bootstrap-base-image.sh "$image" "${image#local/debian:}" ;;
						*) log "BASE_IMAGE=$image is neither here nor pullable"; exit 1 ;;
					esac
				fi
				printf '%s\n' "$image"
				return 0
			fi
			image="$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)"
			if present "$image"; then
				printf '%s\n' "$image"
				return 0
			fi
			log "cannot pull $image; using Debian 12"
			debian bookworm
			;;
		*)
			log "unknown base '$1': expected default, debian12, debian13, debian14 or debian12-arm64"
			exit 2
			;;
	esac
}

main "$@"
