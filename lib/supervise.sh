#!/usr/bin/env bash
# Production's process tree, supervised by this shell (PID 1: entry-point.sh
# says why): uWSGI's pool, then nginx once a worker accepts, the metrics
# server (METRICS_PORT) and the certificate watcher (TLS_CERT) when set, and
# the JSON log relay (LOG_FORMAT=json, lib/common.sh). Sourced by
# entry-point.sh, never run.
#
# Generations. Each start and each reload (SIGHUP) runs uWSGI's pool as a new
# generation in a folder of its own, $RUNTIME_DIR/uwsgi/gN (app.ini's
# %(flaskbox_generation)); nginx sends each request to the sockets of the one
# $RUNTIME_DIR/uwsgi/current links to. A reload starts the next generation
# beside the running one, swaps the link once it accepts (new requests go to
# the new code at once), then retires the old one: its event streams end
# cleanly, everything else it holds has RELOAD_GRACE to finish. nginx itself
# reloads only when its configuration changed; a renewed certificate needs
# no reload at all (flaskbox/certificates.py).
#
# Deaths. The metrics server, the certificate watcher and the log relay are
# started again. nginx's or the current uWSGI master's death ends the
# container within 2 s (an orchestrator replaces it), once nginx has answered
# what it could and written its log.
#
# The stop's budget comes from the settings (FLASKBOX_STOP_*): nginx drains
# for STOP_DRAIN_SECONDS, uWSGI's workers get STOP_MERCY_SECONDS, and each is
# killed STOP_KILL_AFTER_SECONDS after its own limit.

#
# Each job lives in a file of its own under lib/supervise/, and shares its
# state through the variables of state.sh alone:
#   state.sh        the shared state and constants
#   processes.sh    alive or not, children, a stop within a budget
#   generations.sh  a uWSGI generation started, waited for, served
#   reload.sh       SIGHUP: the next generation, nginx's configuration
#   retire.sh       a reload's old generation, finished and stopped
#   stop.sh         docker stop, and a server's death
#   helpers.sh      the metrics server, certificate watcher, log relay
# This file starts the tree and runs the loop that waits on it.

# shellcheck source=lib/supervise/state.sh
. "$FLASKBOX_LIB/supervise/state.sh"
# shellcheck source=lib/supervise/processes.sh
. "$FLASKBOX_LIB/supervise/processes.sh"
# shellcheck source=lib/supervise/generations.sh
. "$FLASKBOX_LIB/supervise/generations.sh"
# shellcheck source=lib/supervise/reload.sh
. "$FLASKBOX_LIB/supervise/reload.sh"
# shellcheck source=lib/supervise/retire.sh
. "$FLASKBOX_LIB/supervise/retire.sh"
# shellcheck source=lib/supervise/stop.sh
. "$FLASKBOX_LIB/supervise/stop.sh"
# shellcheck source=lib/supervise/helpers.sh
. "$FLASKBOX_LIB/supervise/helpers.sh"

# _nginx_wait_listening
#   Returns once nginx holds its ports: it writes its pid file only after
#   it has bound every listen socket. If it exits first (a port taken since
#   the settings were checked), the container stops, saying so.
_nginx_wait_listening() {
	local written=''
	until { read -r written <"$RUNTIME_DIR/nginx/nginx.pid"; } 2>/dev/null && [ "$written" = "$FLASKBOX_NGINX_PID" ]; do
		if ! kill -0 "$FLASKBOX_NGINX_PID" 2>/dev/null; then
			local status=0
			wait "$FLASKBOX_NGINX_PID" 2>/dev/null || status=$?
			flaskbox_error "nginx could not start (exit code $status; its message is above: a port taken by" \
				"another process?); not serving"
			_stop_uwsgi 300 || true
			_stop_helpers
			exit "$((status == 0 ? 1 : status))"
		fi
		sleep 0.02
	done
}

# _prod_supervise
#   Returns never: waits for any process it started to end, and acts on it.
#   (A stop signal's trap exits from inside the wait; a reload's returns,
#   and the wait goes on.)
_prod_supervise() {
	local exited status pid pids
	while :; do
		exited='' status=0
		pids=("$FLASKBOX_UWSGI_PID" "$FLASKBOX_NGINX_PID" \
			${FLASKBOX_METRICS_PID:+"$FLASKBOX_METRICS_PID"} ${FLASKBOX_TLS_WATCH_PID:+"$FLASKBOX_TLS_WATCH_PID"} \
			${FLASKBOX_JSON_LOGS_PID:+"$FLASKBOX_JSON_LOGS_PID"} "${!FLASKBOX_RETIRING[@]}")
		# One that ended while this shell ran something else (a reload in
		# SIGHUP's trap, a restart below) was reaped then, and wait -n no
		# longer sees it (bash drops a job once it has reported it); wait
		# PID still has its status.
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null || { exited="$pid" && break; }
		done
		if [ -n "$exited" ]; then
			wait "$exited" 2>/dev/null || status=$?
		else
			# Its stderr nowhere: bash writes there its own notice of a job
			# killed by a signal ("line N: PID Killed uwsgi ..."), which the
			# log then showed under the servers' lines; the cases below say
			# what ended, and why, in their own words.
			wait -n -p exited "${pids[@]}" 2>/dev/null || status=$?
			# wait -p leaves it unset when a trapped signal (SIGHUP's
			# reload) ends the wait early.
			exited="${exited:-}"
		fi
		case "$exited" in
			'') ;;
			"$FLASKBOX_UWSGI_PID") _prod_abort "uWSGI's master" "$status" ;;
			"$FLASKBOX_NGINX_PID") _prod_abort "nginx's master" "$status" ;;
			"${FLASKBOX_METRICS_PID:-}" | "${FLASKBOX_TLS_WATCH_PID:-}" | "${FLASKBOX_JSON_LOGS_PID:-}")
				_prod_restart_helper "$exited" "$status"
				;;
			*) _retired "$exited" "$status" ;;
		esac
	done
}

# flaskbox_start_production
#   Starts uWSGI, then nginx, and supervises both: a stop signal stops them
#   in order; SIGHUP reloads; either one dying takes the container down
#   (non-zero) so that a restart policy or orchestrator replaces it.
flaskbox_start_production() {
	# The debugger must never be reachable in production (Flask before 2.3
	# turned it on for FLASK_ENV=development); FLASK_ENV=production is the
	# app's to read, as tutorials' configs do (names.py warns of the rest).
	unset FLASK_DEBUG
	[ "${FLASK_ENV:-production}" = production ] || unset FLASK_ENV
	# uWSGI would read UWSGI_* variables as options of its own, before its
	# ini: the rendered uwsgi.ini already holds them, in the right order.
	local var
	for var in $(compgen -e); do
		[[ "$var" != UWSGI_* ]] || unset "$var"
	done
	_state_init
	# The stop runs inside the trap, so a signal arriving at any moment
	# (even before nginx has started) stops whatever is running, in order.
	# SIGHUP reloads instead (before nginx has started: ignored, logged).
	trap _prod_stop TERM INT QUIT
	trap _prod_reload HUP
	rm -f "$RUNTIME_DIR/draining"
	[ -z "${TLS_CERT:-}" ] || python3 -I -m flaskbox tls-apply || exit 2
	_prod_start_pool
	_metrics_start
	_metrics_wait_until_ready
	FLASKBOX_NGINX_DIGEST="$(python3 -I -m flaskbox nginx-digest)"
	rm -f "$RUNTIME_DIR/nginx/nginx.pid"
	nginx -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf" &
	FLASKBOX_NGINX_PID=$!
	_nginx_wait_listening
	_tls_watch_start
	flaskbox_log "serving $APP_MODULE on port $PORT (nginx $FLASKBOX_NGINX_PID, uWSGI $FLASKBOX_UWSGI_PID)"
	_prod_supervise
}
