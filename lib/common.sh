#!/usr/bin/env bash
# What entry-point.sh and the files it sources share: the log lines, the
# variables Python hands this shell (as data), the JSON log relay. Sourced,
# never run.

# flaskbox_log MESSAGE...
#   Info line on stderr (stdout carries only the access log, so LOG_FORMAT=json
#   stays parseable). ENTRYPOINT_QUIET_LOGS=1 silences it.
flaskbox_log() {
	[ "${ENTRYPOINT_QUIET_LOGS:-0}" = 1 ] && return 0
	printf 'flaskbox: %s\n' "$*" >&2
}

# flaskbox_warn MESSAGE...
#   A mistake or a fault the servers work around, on stderr; never silenced.
flaskbox_warn() {
	printf 'flaskbox: warning: %s\n' "$*" >&2
}

# flaskbox_error MESSAGE...
#   Error line on stderr. Errors are never silenced.
flaskbox_error() {
	printf 'flaskbox: error: %s\n' "$*" >&2
}

# flaskbox_assign COMMAND [ARG...]
#   `python3 -I -m flaskbox COMMAND ARG...`, whose records give this shell
#   its variables (flaskbox_assignments); its failure ends the start with
#   its exit code (it has said why).
flaskbox_assign() {
	local status=0
	flaskbox_assignments < <(python3 -I -m flaskbox "$@")
	wait "$!" || status=$?
	[ "$status" -eq 0 ] || exit "$status"
}

# flaskbox_assignments
#   Reads NUL-separated records on stdin (flaskbox/start/shell.py): "export NAME
#   VALUE", "set NAME VALUE" (this shell's own, not exported) or "unset
#   NAME". Data, never evaluated: a value is a value, whatever it holds.
flaskbox_assignments() {
	local how name value
	while IFS= read -r -d '' how && IFS= read -r -d '' name; do
		# A name only: in an array subscript bash would evaluate code.
		[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
		if [ "$how" = unset ]; then
			unset "$name"
			continue
		fi
		IFS= read -r -d '' value || return 0
		case "$how" in
			export) export "$name=$value" ;;
			set) printf -v "$name" '%s' "$value" ;;
		esac
	done
}

# flaskbox_json_logs
#   LOG_FORMAT=json: this shell's stderr, and so that of every process it
#   starts (hooks, nginx, uWSGI, the app), goes through flaskbox/sidecars/jsonlog.py,
#   which writes each line to the container's stderr as a JSON object. The
#   lines pass through a pipe this shell keeps open too (a FIFO whose name is
#   gone at once): if the relay dies, writers neither fail nor lose what they
#   write, and a new relay reads on where it stopped (the arbiter starts it
#   once it is PID 1: flaskbox/arbiter/helpers.py). On exit, it is given its
#   last lines (here, and by the arbiter).
flaskbox_json_logs() {
	[ "${LOG_FORMAT:-}" = json ] || return 0
	local dir
	# /dev/shm is there even on a read-only root; /tmp otherwise.
	dir="$(mktemp -d -p /dev/shm flaskbox-log.XXXXXX 2>/dev/null || mktemp -d)" || {
		flaskbox_error "LOG_FORMAT=json: nowhere to make the log relay's pipe (/dev/shm and /tmp are read-only); add --tmpfs /tmp"
		exit 2
	}
	mkfifo -m 600 "$dir/relay"
	# Read and write: the pipe never lacks a writer (no end of file for the
	# relay) nor a reader (no broken pipe for the writers).
	exec {FLASKBOX_JSON_LOGS_FD}<>"$dir/relay"
	rm -rf "$dir"
	exec {FLASKBOX_STDERR_FD}>&2
	flaskbox_json_logs_relay
	exec 2>&"$FLASKBOX_JSON_LOGS_FD"
	trap _flaskbox_json_logs_end EXIT
}

# flaskbox_json_logs_relay
#   Starts the relay: it reads the pipe (opened anew, read-only, so that it
#   sees the end once every writer is gone) and writes the container's own
#   stderr. FLASKBOX_JSON_LOGS_PID; the arbiter takes it over.
#   It runs inside a subshell that outlives it and exits with its status:
#   bash writes a notice of a child killed by a signal to its own stderr,
#   and PID 1's is this pipe. With the relay dead and the pipe full, that
#   notice blocked PID 1 for good, before it could start a relay again, and
#   every writer with it. The subshell's notice goes nowhere.
flaskbox_json_logs_relay() {
	(
		# Only the read end here: no writer held, so the relay sees the end.
		exec <"/proc/self/fd/$FLASKBOX_JSON_LOGS_FD" {FLASKBOX_JSON_LOGS_FD}>&-
		# It keeps the stop signals the entry-point holds (and, a job in
		# the background, SIGINT and SIGQUIT ignored): it ends at the
		# pipe's end, never by a signal, the last lines relayed.
		python3 -I -m flaskbox json-log 1>&"$FLASKBOX_STDERR_FD" 2>&"$FLASKBOX_STDERR_FD"
		exit "$?"
	) 2>/dev/null &
	FLASKBOX_JSON_LOGS_PID=$!
}

# _flaskbox_json_logs_end
#   Closes this shell's ends of the relay's pipe and waits (at most 2 s) for
#   the relay to write what it still holds: the container ends with it.
_flaskbox_json_logs_end() {
	exec 2>/dev/null
	exec {FLASKBOX_JSON_LOGS_FD}>&-
	# Whichever ends first: a hook's process that outlives it may still hold
	# the pipe, and the relay would wait for it.
	sleep 2 &
	wait -n "$FLASKBOX_JSON_LOGS_PID" "$!" 2>/dev/null || true
}
