#!/usr/bin/env bash
# The processes beside the servers, which serving never waits on: the
# metrics server (METRICS_PORT), the certificate watcher (TLS_CERT) and the
# JSON log relay (LOG_FORMAT=json, lib/common.sh). Each is started again when
# it dies, wherever the supervisor is waiting. Sourced by lib/supervise.sh.

# _metrics_start
#   METRICS_PORT's server (flaskbox/metrics.py), if set. It only reads what
#   nginx and uWSGI write, so serving never waits on it: if it dies, it is
#   started again (its counts start again from zero, which Prometheus's
#   rate() takes as a counter reset).
_metrics_start() {
	[ -n "${METRICS_PORT:-}" ] || return 0
	rm -f "$RUNTIME_DIR/metrics/ready"
	python3 -I -m flaskbox metrics &
	FLASKBOX_METRICS_PID=$!
}

# _metrics_wait_until_ready
#   A METRICS_PORT that cannot be listened on (taken) stops the start, as a
#   bad PORT would, instead of a metrics server failing on and on.
_metrics_wait_until_ready() {
	[ -n "${FLASKBOX_METRICS_PID:-}" ] || return 0
	until [ -e "$RUNTIME_DIR/metrics/ready" ]; do
		if ! kill -0 "$FLASKBOX_METRICS_PID" 2>/dev/null; then
			flaskbox_error "the metrics server on METRICS_PORT=$METRICS_PORT did not start (see above); not serving"
			kill -KILL "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
			exit 1
		fi
		sleep 0.05
	done
}

# _tls_watch_start
#   With TLS on, the watcher that puts a renewed certificate in use
#   (flaskbox/certificates.py).
_tls_watch_start() {
	[ -n "${TLS_CERT:-}" ] || return 0
	python3 -I -m flaskbox tls-watch &
	FLASKBOX_TLS_WATCH_PID=$!
}

# _prod_restart_helper PID STATUS
#   Starts again the helper (metrics server, certificate watcher, JSON log
#   relay) that was PID and exited with STATUS, and says so.
_prod_restart_helper() {
	case "$1" in
		"${FLASKBOX_METRICS_PID:-}")
			flaskbox_error "the metrics server exited with code $2; starting it again"
			sleep 1
			_metrics_start
			;;
		"${FLASKBOX_TLS_WATCH_PID:-}")
			flaskbox_error "the certificate watcher exited with code $2; starting it again"
			sleep 1
			_tls_watch_start
			;;
		"${FLASKBOX_JSON_LOGS_PID:-}")
			# First: until it runs, what is written to stderr waits in the
			# pipe, and a writer blocks once the pipe is full.
			flaskbox_json_logs_relay
			flaskbox_error "the JSON log relay exited with code $2; started again"
			;;
	esac
}

# _prod_restart_dead_helpers
#   The helpers that ended while the supervisor was busy elsewhere (a reload
#   waiting for new code), started again there and then: a relay left dead
#   for the length of a slow import would leave the app's stderr, and so
#   its workers, blocked on a full pipe.
_prod_restart_dead_helpers() {
	local pid
	for pid in ${FLASKBOX_METRICS_PID:-} ${FLASKBOX_TLS_WATCH_PID:-} ${FLASKBOX_JSON_LOGS_PID:-}; do
		_prod_restart_if_dead "$pid"
	done
}

# _prod_restart_if_dead PID
#   _prod_restart_helper for helper PID if it has ended, with its status.
_prod_restart_if_dead() {
	local status=0
	kill -0 "$1" 2>/dev/null && return 0
	wait "$1" 2>/dev/null || status=$?
	_prod_restart_helper "$1" "$status"
}

# _json_logs_keep_relaying
#   In the supervisor's own shell, while it waits on a process to stop (a
#   stop's drain, a reload's): a JSON log relay that died meanwhile starts
#   again at once. Until then every write to stderr waits in the pipe, the
#   last words and the draining requests' log lines included, and a writer
#   blocks once the pipe is full. (A retirement's subshell leaves it alone:
#   the relay is not its child.) Builtins only: it runs every 20 ms.
_json_logs_keep_relaying() {
	[ -n "${FLASKBOX_JSON_LOGS_PID:-}" ] && [ "$BASHPID" = "$$" ] || return 0
	_prod_restart_if_dead "$FLASKBOX_JSON_LOGS_PID"
}
