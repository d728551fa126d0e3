#!/usr/bin/env bash
# Production's process tree: uWSGI, then nginx once a worker accepts, both
# supervised by this shell. A stop signal stops them in order; SIGHUP
# reloads both in place; either one dying takes the container down. Sourced
# by entry-point.sh, never run.
#
# The stop's budget comes from the settings (FLASKBOX_STOP_*, set by
# `python3 -m flaskbox resolve`): nginx drains for STOP_DRAIN_SECONDS, uWSGI's
# workers get STOP_MERCY_SECONDS, and each is killed STOP_KILL_AFTER_SECONDS
# after its own limit.

# _prod_wait_until_ready
#   nginx starts only once a uWSGI worker accepts requests (app.ini's
#   hook-accepting1-once creates uwsgi.ready), so no client waits on a slow
#   app import. Fails if uWSGI dies first, e.g. on a broken app.
_prod_wait_until_ready() {
	until [ -e "$RUNTIME_DIR/uwsgi.ready" ]; do
		if ! kill -0 "$FLASKBOX_UWSGI_PID" 2>/dev/null; then
			local status=0
			wait "$FLASKBOX_UWSGI_PID" || status=$?
			if [ "$status" -eq 22 ]; then
				# need-app's exit code: the import failed (traceback above).
				flaskbox_error "could not load APP_MODULE='$APP_MODULE': see the traceback above; not serving"
			elif [ "$status" -eq 2 ]; then
				# serve.py: the module holds no app (its message is above).
				flaskbox_error "APP_MODULE='$APP_MODULE' does not name an app (see above); not serving"
			else
				flaskbox_error "uWSGI exited with code $status before it was ready; see its log above"
			fi
			exit "$((status == 0 ? 1 : status))"
		fi
		sleep 0.05
	done
}

# _metrics_start
#   METRICS_PORT's server (flaskbox/metrics.py), if set. It only reads what
#   nginx and uWSGI write, so serving never waits on it: if it dies, the
#   supervisor starts it again (its counts start again from zero, which
#   Prometheus's rate() takes as a counter reset).
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

# _stop_process PID SIGNAL SECONDS [AT_SECONDS ACTION]
#   Sends SIGNAL, waits up to SECONDS for the process to exit, then kills it
#   (SIGKILL) and returns 137. Otherwise returns the process's exit code.
#   ACTION, if given, is called once with PID after AT_SECONDS. Times are
#   read from the clock, so a loaded machine does not stretch the budget.
_stop_process() {
	local pid="$1" signal="$2" seconds="$3" at="${4:-}" action="${5:-}" status=0 started now
	# bash's own clock, in microseconds (its decimal separator follows the
	# locale, so any non-digit is dropped): no fork per poll.
	started="${EPOCHREALTIME//[!0-9]/}"
	kill -"$signal" "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		now="${EPOCHREALTIME//[!0-9]/}"
		if [ $((now - started)) -ge $((seconds * 1000000)) ]; then
			flaskbox_error "pid $pid still running ${seconds}s after SIG$signal; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			return 137
		fi
		if [ -n "$action" ] && [ $((now - started)) -ge $((at * 1000000)) ]; then
			"$action" "$pid"
			action=""
		fi
		sleep 0.02
	done
	wait "$pid" 2>/dev/null || status=$?
	return "$status"
}

# _uwsgi_workers MASTER_PID
#   The master's children: its workers.
_uwsgi_workers() {
	local children_file="/proc/$1/task/$1/children"
	[ -r "$children_file" ] || return 0
	echo "$(<"$children_file")"
}

# _end_streams MASTER_PID
#   Streams and WebSockets never finish by themselves: each worker ends its
#   own cleanly (flaskbox/streams.py) on FLASKBOX_STOP_STREAMS_SIGNAL, so
#   that nginx's drain is left with ordinary requests only.
_end_streams() {
	local workers
	workers="$(_uwsgi_workers "$1")"
	[ -n "$workers" ] || return 0
	# shellcheck disable=SC2086 # one word per worker
	kill -"$FLASKBOX_STOP_STREAMS_SIGNAL" $workers 2>/dev/null || true
}

# _kill_busy_uwsgi_workers MASTER_PID
#   uWSGI 2.0 does not enforce worker-reload-mercy in a graceful stop
#   (measured: a stuck handler ran until docker's SIGKILL), so the workers
#   still running once the mercy is over are killed here. nginx has drained
#   first, so no client is waiting on them by then. Zombies (workers that
#   finished, not yet reaped by the master) are left alone.
_kill_busy_uwsgi_workers() {
	local child stat busy=()
	for child in $(_uwsgi_workers "$1"); do
		read -r stat 2>/dev/null <"/proc/$child/stat" || continue
		stat="${stat##*) }"
		[ "${stat%% *}" = Z ] || busy+=("$child")
	done
	[ "${#busy[@]}" -gt 0 ] || return 0
	flaskbox_error "uWSGI worker(s) ${busy[*]} still busy ${FLASKBOX_STOP_MERCY_SECONDS}s into the stop; killing them"
	kill -KILL "${busy[@]}" 2>/dev/null || true
}

# _reload_nginx
#   nginx re-reads its config: the drop-ins in /app/nginx.d and the TLS
#   certificate files as they are now (a renewal). Its master starts new
#   workers on the same listening sockets and old ones finish their requests,
#   so nothing is refused. A config `nginx -t` rejects (a half-written
#   certificate, a bad drop-in) is not loaded: the running one stays.
_reload_nginx() {
	if ! nginx -t -q -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf"; then
		flaskbox_error "SIGHUP: nginx rejected its configuration (message above); still serving the previous one"
		return 0
	fi
	kill -HUP "$FLASKBOX_NGINX_PID" 2>/dev/null || true
	flaskbox_log "SIGHUP: nginx reloads its configuration"
}

# _reload_uwsgi
#   uWSGI reloads the app's code. The app is loaded in the master before
#   the fork (app.ini, lazy-apps = false), so replacing workers one by one
#   (chain reload) would fork the old code again: the master itself reloads
#   (SIGHUP: its workers finish their requests, then it re-executes and
#   imports the app anew). Its listening socket stays open throughout, so
#   requests wait in its queue for the new workers instead of failing.
#   A trial import in a process of its own comes first: code that no longer
#   imports is logged and the running code stays, where uWSGI's own import
#   failing (need-app) would end the container.
_reload_uwsgi() {
	local trial status=0
	# In the background, so that a stop signal is handled while it imports.
	python3 -I -m flaskbox check-app >&2 &
	trial=$!
	wait "$trial" || status=$?
	if [ "$status" -ne 0 ]; then
		flaskbox_error "SIGHUP: APP_MODULE='$APP_MODULE' no longer imports (see above); still serving the code loaded before"
		return 0
	fi
	# Streams and WebSockets never finish by themselves: they end cleanly
	# (their clients reconnect), so that the old workers can.
	_end_streams "$FLASKBOX_UWSGI_PID"
	kill -HUP "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
	flaskbox_log "SIGHUP: uWSGI reloads the app's code"
}

# _prod_reload
#   SIGHUP (docker kill -s HUP, kill -HUP 1): reload in place, never a stop.
#   What is reloaded: the app's code and the drop-in config (nginx.d, the
#   certificate files); not the settings, which need a restart.
_prod_reload() {
	if [ ! -e "$RUNTIME_DIR/uwsgi.ready" ] || [ -z "${FLASKBOX_NGINX_PID:-}" ]; then
		flaskbox_log "SIGHUP while starting: nothing to reload yet, ignored"
		return 0
	fi
	flaskbox_log "SIGHUP: reloading in place (the app's code and nginx's configuration; settings need a restart)"
	_reload_nginx
	_reload_uwsgi
}

# _prod_stop
#   Ordered graceful stop, inside docker's default 10 s grace: open streams
#   and WebSockets end cleanly, nginx stops accepting and drains requests
#   in flight (SIGQUIT, STOP_DRAIN_SECONDS),
#   then uWSGI lets its now idle workers exit (SIGTERM, STOP_MERCY_SECONDS);
#   each is killed STOP_KILL_AFTER_SECONDS after its own limit.
_prod_stop() {
	local status=0
	# One stop at a time: repeated signals while draining change nothing,
	# and a reload has nothing left to reload.
	trap '' TERM INT QUIT HUP
	if [ ! -e "$RUNTIME_DIR/uwsgi.ready" ]; then
		# Still importing the app: nothing is served yet, and uWSGI acts on
		# SIGTERM only once its master loop runs.
		flaskbox_log "stopping before the app was ready"
		kill -KILL "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		wait "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		exit 0
	fi
	flaskbox_log "stopping: streams end, nginx drains, then uWSGI"
	# flaskbox_draining in the metrics, which are served until the end.
	: >"$RUNTIME_DIR/draining"
	_end_streams "$FLASKBOX_UWSGI_PID"
	if [ -n "${FLASKBOX_NGINX_PID:-}" ]; then
		_stop_process "$FLASKBOX_NGINX_PID" QUIT \
			$((FLASKBOX_STOP_DRAIN_SECONDS + FLASKBOX_STOP_KILL_AFTER_SECONDS)) || status=$?
	fi
	_stop_process "$FLASKBOX_UWSGI_PID" TERM $((FLASKBOX_STOP_MERCY_SECONDS + FLASKBOX_STOP_KILL_AFTER_SECONDS)) \
		"$FLASKBOX_STOP_MERCY_SECONDS" _kill_busy_uwsgi_workers || status=$?
	if [ -n "${FLASKBOX_METRICS_PID:-}" ]; then
		_stop_process "$FLASKBOX_METRICS_PID" TERM "$FLASKBOX_STOP_KILL_AFTER_SECONDS" || true
	fi
	flaskbox_log "stopped"
	exit "$status"
}

# flaskbox_start_production
#   Starts uWSGI, then nginx, and supervises both: a stop signal stops them
#   in order; either one dying takes the container down (non-zero) so that
#   a restart policy or orchestrator replaces it.
flaskbox_start_production() {
	# The debugger must never be reachable in production.
	unset FLASK_DEBUG FLASK_ENV
	# uWSGI would read UWSGI_* variables as options of its own, before its
	# ini: the rendered uwsgi.ini already holds them, in the right order.
	local var
	for var in $(compgen -e); do
		[[ "$var" != UWSGI_* ]] || unset "$var"
	done
	FLASKBOX_NGINX_PID=
	FLASKBOX_METRICS_PID=
	# The stop runs inside the trap, so a signal arriving at any moment
	# (even before nginx has started) stops whatever is running, in order.
	# SIGHUP reloads instead (before nginx has started: ignored, logged).
	trap _prod_stop TERM INT QUIT
	trap _prod_reload HUP

	# uWSGI's stdout (and so the app's print()) joins stderr: stdout is kept
	# for nginx's access log, one line per request, e.g. JSON for a collector.
	# Files left by a killed predecessor would let nginx start too early.
	rm -f "$RUNTIME_DIR"/uwsgi*.sock "$RUNTIME_DIR/uwsgi.ready" "$RUNTIME_DIR/uwsgi.accepting" \
		"$RUNTIME_DIR/draining"
	uwsgi --ini "$RUNTIME_DIR/uwsgi.ini" >&2 &
	FLASKBOX_UWSGI_PID=$!
	_prod_wait_until_ready
	# The app has written the static location for its own static folder.
	if ! nginx -t -q -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf"; then
		flaskbox_error "nginx rejected the static location for the app's static folder (message above)"
		kill -KILL "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		wait "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		exit 2
	fi
	_metrics_start
	_metrics_wait_until_ready
	nginx -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf" &
	FLASKBOX_NGINX_PID=$!
	flaskbox_log "serving $APP_MODULE on port $PORT (nginx $FLASKBOX_NGINX_PID, uWSGI $FLASKBOX_UWSGI_PID)"

	local exited='' status=0
	# Returns only when a server exits on its own (a stop signal's trap
	# exits from inside the wait; a reload's returns, and the wait goes on).
	until [ -n "$exited" ]; do
		status=0
		wait -n -p exited "$FLASKBOX_UWSGI_PID" "$FLASKBOX_NGINX_PID" \
			${FLASKBOX_METRICS_PID:+"$FLASKBOX_METRICS_PID"} || status=$?
		# wait -p leaves it unset when a trapped signal (SIGHUP's reload)
		# ends the wait early.
		exited="${exited:-}"
		if [ -n "$exited" ] && [ "$exited" = "${FLASKBOX_METRICS_PID:-}" ]; then
			flaskbox_error "the metrics server exited with code $status; starting it again"
			sleep 1
			_metrics_start
			exited=''
		fi
	done
	local name=nginx
	[ "$exited" = "$FLASKBOX_UWSGI_PID" ] && name=uWSGI
	flaskbox_error "$name exited unexpectedly with code $status; stopping the container"
	exit "$((status == 0 ? 1 : status))"
}

