#!/usr/bin/env bash
# Build a Debian base image from the Debian archive alone, for machines that
# cannot pull from any container registry (air-gapped sites, this project's
# CI). Usage: bootstrap-base-image.sh [TAG] [SUITE]
#   TAG    image to create (default local/debian:bookworm)
#   SUITE  Debian suite (default bookworm)
# MIRROR may name a Debian mirror for debootstrap (default: its own default).
# The host's extra CA certificates are copied in, so that pip inside
# `docker build` trusts an intercepting HTTPS proxy the host already trusts.
set -Eeuo pipefail

TAG="${1:-local/debian:bookworm}"
SUITE="${2:-bookworm}"
MIRROR="${MIRROR:-}"

log() { printf '[bootstrap-base-image] %s\n' "$*" >&2; }

# shellcheck source=deploy/host-tools.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/host-tools.sh"

main() {
	if docker image inspect "$TAG" >/dev/null 2>&1; then
		log "$TAG already present"
		return 0
	fi
	command -v debootstrap >/dev/null 2>&1 || host_install debootstrap
	local rootfs
	rootfs="$(mktemp -d /tmp/rootfs.XXXXXX)"
	# shellcheck disable=SC2064 # expand now: the path is fixed
	trap "rm -rf '$rootfs'" EXIT

	log "debootstrap $SUITE into $rootfs"
	local args=(--variant=minbase --include=ca-certificates "$SUITE" "$rootfs")
	[ -n "$MIRROR" ] && args+=("$MIRROR")
	debootstrap "${args[@]}" >/tmp/debootstrap.log 2>&1 || {
		tail -n 30 /tmp/debootstrap.log >&2
		exit 1
	}

	local crt
	for crt in /usr/local/share/ca-certificates/*.crt; do
		[ -e "$crt" ] || continue
		cp "$crt" "$rootfs/usr/local/share/ca-certificates/"
	done
	chroot "$rootfs" update-ca-certificates >/dev/null
	# apt caches from the bootstrap are not part of an image.
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

	log "importing as $TAG"
	tar -C "$rootfs" -c . | docker import - "$TAG" >/dev/null
}

main "$@"
