#!/usr/bin/env bash
# Build a Debian base image from the Debian archive alone, for machines that
# cannot pull from any container registry (air-gapped sites, this project's
# CI). Usage: bootstrap-base-image.sh [TAG] [SUITE]
#   TAG    image to create (default local/debian:bookworm)
#   SUITE  Debian suite (default bookworm)
# MIRROR may name a Debian mirror for debootstrap (default: its own default).
# ARCH may name another Debian architecture (arm64 on an amd64 machine): the
# second stage then runs under qemu user emulation, which this script sets up
# (qemu-user-static, binfmt_misc), and the image is imported as that platform.
# The host's extra CA certificates are copied in, so that pip inside
# `docker build` trusts an intercepting HTTPS proxy the host already trusts.
set -Eeuo pipefail

TAG="${1:-local/debian:bookworm}"
SUITE="${2:-bookworm}"
MIRROR="${MIRROR:-}"
ARCH="${ARCH:-$(dpkg --print-architecture)}"

log() { printf '[bootstrap-base-image] %s\n' "$*" >&2; }

# shellcheck source=deploy/host-tools.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/host-tools.sh"

# enable_emulation
#   Lets this machine run ARCH's programs (debootstrap's second stage, then
#   every RUN of a build) through qemu, registered with binfmt_misc. Fails
#   loudly when the kernel refuses: an arm64 test that cannot run must not pass.
enable_emulation() {
	host_install qemu-user-static binfmt-support
	if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	fi
	local qemu
	qemu="qemu-$(qemu_arch "$ARCH")"
	update-binfmts --enable "$qemu"
	grep -qx enabled "/proc/sys/fs/binfmt_misc/$qemu"
}

# qemu_arch DEBIAN_ARCH
#   qemu's name for a Debian architecture.
qemu_arch() {
	case "$1" in
		arm64) echo aarch64 ;;
		armhf | armel) echo arm ;;
		ppc64el) echo ppc64le ;;
		i386) echo i386 ;;
		*) echo "$1" ;;
	esac
}

# record_platform
#   Makes TAG say linux/ARCH: an engine without the experimental flag ignores
#   `docker import --platform`, and images built FROM it would claim amd64.
record_platform() {
	local imported
	imported="$(docker image inspect -f '{{.Id}}' "$TAG")"
	docker save "$TAG" | python3 "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/image-platform.py" "$ARCH" \
		| docker load >/dev/null
	docker rmi "$imported" >/dev/null
	[ "$(docker image inspect -f '{{.Architecture}}' "$TAG")" = "$(docker_arch "$ARCH")" ]
}

# docker_arch DEBIAN_ARCH
#   Docker's name for a Debian architecture.
docker_arch() {
	case "$1" in
		armhf | armel) echo arm ;;
		ppc64el) echo ppc64le ;;
		i386) echo 386 ;;
		*) echo "$1" ;;
	esac
}

# in_development SUITE
#   True for a Debian suite still in development: testing, unstable and
#   their code names (forky, sid), and any code name newer than the last
#   release named here. Their Release files are valid for a week only.
in_development() {
	case "$1" in
		stable | oldstable | oldoldstable | buster | bullseye | bookworm | trixie) return 1 ;;
		*) return 0 ;;
	esac
}

main() {
	if docker image inspect "$TAG" >/dev/null 2>&1; then
		log "$TAG already present"
		return 0
	fi
	command -v debootstrap >/dev/null 2>&1 || host_install debootstrap
	[ "$ARCH" = "$(dpkg --print-architecture)" ] || enable_emulation
	local rootfs
	rootfs="$(mktemp -d /tmp/rootfs.XXXXXX)"
	# shellcheck disable=SC2064 # expand now: the path is fixed
	trap "rm -rf '$rootfs'" EXIT

	log "debootstrap $SUITE ($ARCH) into $rootfs"
	local args=(--arch="$ARCH" --variant=minbase --include=ca-certificates "$SUITE" "$rootfs")
	# A suite newer than this machine's debootstrap (Debian 12's knows no
	# forky) is bootstrapped with the script of Debian's unstable, which every
	# debootstrap has and which fits each suite that is still in development.
	local script=""
	[ -e "/usr/share/debootstrap/scripts/$SUITE" ] || script=/usr/share/debootstrap/scripts/sid
	if [ -n "$script" ] || [ -n "$MIRROR" ]; then
		args+=("${MIRROR:-http://deb.debian.org/debian}")
	fi
	[ -n "$script" ] && args+=("$script")
	local debootstrap_log="/tmp/debootstrap-$SUITE-$ARCH.log"
	debootstrap "${args[@]}" >"$debootstrap_log" 2>&1 || {
		tail -n 30 "$debootstrap_log" >&2
		exit 1
	}

	local crt
	for crt in /usr/local/share/ca-certificates/*.crt; do
		[ -e "$crt" ] || continue
		cp "$crt" "$rootfs/usr/local/share/ca-certificates/"
	done
	chroot "$rootfs" update-ca-certificates >/dev/null
	# Debian's testing archive signs Release files valid for a week; a
	# mirror or a machine whose copy is older (or whose clock is off) makes
	# apt refuse it, and `apt-get update` in the Dockerfile would fail. By
	# the suite, not by this machine's debootstrap: one that knows forky
	# bootstraps it with its own script. The signature is still checked:
	# this only drops the date.
	if in_development "$SUITE"; then
		printf 'Acquire::Check-Valid-Until "false";\n' >"$rootfs/etc/apt/apt.conf.d/99flaskbox-valid-until"
	fi
	# apt caches from the bootstrap are not part of an image.
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

	log "importing as $TAG (linux/$ARCH)"
	tar -C "$rootfs" -c . | docker import --platform "linux/$ARCH" - "$TAG" >/dev/null
	[ "$ARCH" = "$(dpkg --print-architecture)" ] || record_platform

}

# Sourced (by a test), only the functions are defined.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
