#!/usr/bin/env bash
# Fails when the test suite left any of its own Docker objects behind:
# containers and volumes named flaskbox-test-*, networks of that name, and
# the throwaway images it builds (flaskbox-fixture:*, flaskbox-app-*:*). The
# image under test (flaskbox:test-*) is the suite's product and stays, so
# that the README's run command can use it. Run by .ci/run after the suite.
set -Eeuo pipefail

found=0

# _report KIND NAME...
#   Lists what was left of one kind; any at all fails the check.
_report() {
	local kind="$1"
	shift
	[ "$#" -gt 0 ] || return 0
	printf '[leftovers] %s left behind: %s\n' "$kind" "$*" >&2
	found=1
}

main() {
	# shellcheck disable=SC2046 # one word per object
	_report containers $(docker ps -a --filter name=flaskbox-test- --format '{{.Names}}')
	# shellcheck disable=SC2046
	_report volumes $(docker volume ls -q --filter name=flaskbox-test-)
	# shellcheck disable=SC2046
	_report networks $(docker network ls --filter name=flaskbox-test- --format '{{.Name}}')
	# shellcheck disable=SC2046
	_report images $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^flaskbox-(fixture|app-)' || true)
	[ "$found" -eq 0 ] && echo "[leftovers] none: the suite removed every container, volume, network and image of its own" >&2
	return "$found"
}

main "$@"
