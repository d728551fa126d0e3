#!/usr/bin/env bash
# Functions shared by the scripts that set up this machine (tests/run.sh,
# bench/run.sh, deploy/start-engine.sh). Sourced, never run.

# host_install PKG...
#   apt-get install the Debian/Ubuntu packages that are missing, quietly.
host_install() {
	local missing=() pkg
	for pkg in "$@"; do
		dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	printf '[host] installing %s\n' "${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# host_venv DIR REQUIREMENTS
#   A virtualenv at DIR with REQUIREMENTS installed (pinned versions, so a
#   second run installs nothing).
host_venv() {
	local venv="$1" requirements="$2"
	if [ ! -x "$venv/bin/python" ]; then
		python3 -m venv "$venv" >/dev/null 2>&1 || {
			rm -rf "$venv"
			host_install python3-venv
			python3 -m venv "$venv"
		}
	fi
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
}
