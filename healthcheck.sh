#!/usr/bin/env bash
# Docker HEALTHCHECK for flaskbox, in pure bash (no curl in the image).
#   production: GET /-/healthy through nginx must return 200. uWSGI's router
#               answers it inside a worker, so nginx, the socket and a worker
#               are all proven, whatever routes the app has.
#   debug:      the dev server must accept a connection. No request is sent,
#               so the developer's log is not flooded with probe lines.
# The mode and port come from the state file the entry-point wrote at start,
# because `-d debug` and computed defaults are not in the environment.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR source=entry-point.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/entry-point.sh"

# _http_status_line PORT PATH
#   Prints the status line of GET PATH on 127.0.0.1:PORT. Waits 2 s at most,
#   inside the HEALTHCHECK's 3 s timeout, so a failure is reported by us.
_http_status_line() {
	local port="$1" path="$2" line
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$path" >&3
	IFS= read -r -t 2 line <&3
	exec 3<&-
	printf '%s\n' "${line%$'\r'}"
}

main() {
	local state="${RUNTIME_DIR:-$FLASKBOX_RUNTIME_DIR}/state" mode port line
	if ! read -r mode port <"$state" 2>/dev/null; then
		flaskbox_error "no state file $state: the server has not started"
		exit 1
	fi
	if [ "$mode" = debug ]; then
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			flaskbox_error "nothing listens on port $port"
			exit 1
		fi
		return 0
	fi
	if ! line="$(_http_status_line "$port" /-/healthy 2>/dev/null)"; then
		flaskbox_error "nothing answers on port $port"
		exit 1
	fi
	case "$line" in
		"HTTP/1."?" 200 "*) ;;
		*)
			flaskbox_error "unhealthy: GET /-/healthy answered '$line'"
			exit 1
			;;
	esac
}

main "$@"
