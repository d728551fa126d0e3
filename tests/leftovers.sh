#!/usr/bin/env bash
# The suite must leave nothing of its own behind: containers, volumes and
# networks named flaskbox-test-*, and the throwaway images it builds
# (flaskbox-*:*, but for the benchmark's own flaskbox-bench:*, which a
# later run rebuilds from). The image under test (flaskbox:test-*) is the
# suite's product and stays, so that the README's run command can use it;
# so do the machine's caches, local/*: bootstrapped bases and uWSGI's wheel
# for emulated builds (tests/uwsgi_wheel.py).
#
#   tests/leftovers.sh list           what is there now, one object a line
#   tests/leftovers.sh check BEFORE   fails naming what is there now and was
#                                     not in BEFORE (a `list` from before the
#                                     run: a machine used again keeps objects
#                                     an older run left, which are not ours)
# Run by .ci/run around the suite.
set -Eeuo pipefail

# _objects
#   Every object of the suite's naming, as "kind name", sorted.
_objects() {
	{
		docker ps -a --filter name=flaskbox-test- --format 'container {{.Names}}'
		docker volume ls --filter name=flaskbox-test- --format 'volume {{.Name}}'
		docker network ls --filter name=flaskbox-test- --format 'network {{.Name}}'
		docker images --format 'image {{.Repository}}:{{.Tag}}' | grep -E '^image flaskbox-' \
			| grep -vE '^image flaskbox-bench:' || true
	} | sort
}

# _check BEFORE_FILE
#   Fails when an object is there now that BEFORE_FILE does not list.
_check() {
	local left
	left="$(_objects | comm -13 "$1" -)"
	if [ -n "$left" ]; then
		printf '[leftovers] the suite left behind:\n%s\n' "$left" >&2
		return 1
	fi
	echo "[leftovers] none: the suite removed every container, volume, network and image of its own" >&2
}

main() {
	case "${1:-}" in
		list) _objects ;;
		check) _check "${2:?usage: tests/leftovers.sh check BEFORE_FILE}" ;;
		*) echo "usage: tests/leftovers.sh list | check BEFORE_FILE" >&2; exit 2 ;;
	esac
}

main "$@"
