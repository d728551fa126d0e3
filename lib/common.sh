#!/usr/bin/env bash
# Logging shared by entry-point.sh and the files it sources. Sourced, never run.

# flaskbox_log MESSAGE...
#   Info line on stderr (stdout carries only the access log, so LOG_FORMAT=json
#   stays parseable). ENTRYPOINT_QUIET_LOGS=1 silences it.
flaskbox_log() {
	[ "${ENTRYPOINT_QUIET_LOGS:-0}" = 1 ] && return 0
	printf 'flaskbox: %s\n' "$*" >&2
}

# flaskbox_error MESSAGE...
#   Error line on stderr. Errors are never silenced.
flaskbox_error() {
	printf 'flaskbox: error: %s\n' "$*" >&2
}

# flaskbox_json_logs
#   LOG_FORMAT=json: this shell's stderr, and so that of every process it
#   starts (hooks, nginx, uWSGI, the app), goes through flaskbox/jsonlog.py,
#   which writes each line to the container's stderr as a JSON object. The
#   relay runs as the image's user; a re-run of this script (step-down)
#   keeps the one already started. On exit, it is given its last lines.
flaskbox_json_logs() {
	[ "${LOG_FORMAT:-}" = json ] || return 0
	if [ -z "${FLASKBOX_JSON_LOGS_PID:-}" ]; then
		local as=()
		[ "$(id -u)" != 0 ] || as=(setpriv --reuid="${FLASKBOX_USER%:*}" --regid="${FLASKBOX_USER#*:}" --clear-groups --)
		exec 3>&2
		exec 2> >(exec "${as[@]}" python3 -I -m flaskbox json-log >&3 2>&3)
		export FLASKBOX_JSON_LOGS_PID=$!
		exec 3>&-
	fi
	trap _flaskbox_json_logs_end EXIT
}

# _flaskbox_json_logs_end
#   Closes this shell's end of the relay's pipe and waits (at most 2 s) for
#   the relay to write what it still holds: the container ends with it.
_flaskbox_json_logs_end() {
	exec 2>/dev/null
	local tries=0
	while kill -0 "$FLASKBOX_JSON_LOGS_PID" 2>/dev/null && [ "$tries" -lt 100 ]; do
		sleep 0.02
		tries=$((tries + 1))
	done
}
