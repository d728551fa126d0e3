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
