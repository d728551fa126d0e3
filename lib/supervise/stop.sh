#!/usr/bin/env bash
# The ends of the process tree: `docker stop` (an ordered drain within
# docker's 10 s: streams end, nginx drains, then uWSGI, one clock for every
# generation), and a server's death (nginx answers what it can and writes
# its log, then the container stops, non-zero, within 2 s). Sourced by
# lib/supervise.sh.

# _end_streams MASTER_PID...
#   Event streams and WebSockets never finish by themselves: each worker ends
#   its own cleanly (flaskbox/streams.py) on FLASKBOX_STOP_STREAMS_SIGNAL, and
#   their clients reconnect. Any other response goes on within its budget.
_end_streams() {
	local master workers=()
	for master in "$@"; do
		# shellcheck disable=SC2207 # one word per worker
		workers+=($(_process_children "$master"))
	done
	[ "${#workers[@]}" -gt 0 ] || return 0
	kill -"$FLASKBOX_STOP_STREAMS_SIGNAL" "${workers[@]}" 2>/dev/null || true
}

# _kill_busy_uwsgi_workers MASTER_PID MILLISECONDS_SINCE_TERM
#   uWSGI 2.0 does not enforce worker-reload-mercy in a graceful stop
#   (measured: a stuck handler ran until docker's SIGKILL), so the workers
#   still running once the mercy is over are killed here. nginx has drained
#   first, so no client is waiting on them by then. Zombies (workers that
#   finished, not yet reaped by the master) are left alone. The log says a
#   request was cut only for a worker in one (flaskbox/generations.py), and
#   calls the master slow only if it had half a second to stop the idle ones.
_kill_busy_uwsgi_workers() {
	local child running=() busy idle=()
	for child in $(_process_children "$1"); do
		! _alive "$child" || running+=("$child")
	done
	[ "${#running[@]}" -gt 0 ] || return 0
	busy="$(python3 -I -m flaskbox busy-workers "$RUNTIME_DIR/uwsgi" "${running[@]}")" || busy="${running[*]}"
	for child in "${running[@]}"; do
		[[ " $busy " == *" $child "* ]] || idle+=("$child")
	done
	if [ -n "$busy" ]; then
		flaskbox_error "uWSGI worker(s) $busy still in a request past their budget; killing them (their" \
			"requests are cut)${idle[*]:+; its idle worker(s) ${idle[*]} with them}"
	elif [ "${2:-0}" -ge 500 ]; then
		flaskbox_warn "uWSGI master $1 is slow to stop its idle workers; killing them past their budget" \
			"(no request was in flight)"
	fi
	kill -KILL "${running[@]}" 2>/dev/null || true
}

# _stop_uwsgi MILLISECONDS
#   Every uWSGI master stops gracefully (its idle workers exit); past the
#   mercy the workers still busy are killed, past MILLISECONDS the masters.
#   One clock for all of them, the retiring generations' (a reload's) and
#   then the current one's: another generation must not add a budget of its
#   own to a stop that docker ends after 10 s.
_stop_uwsgi() {
	local master status=0 masters=() started
	mapfile -t masters < <(_uwsgi_masters)
	# The retirements first: each watches its master, and would report its
	# stop as a death, or stop it a second time.
	_stop_retirements
	started="${EPOCHREALTIME//[!0-9]/}"
	kill -TERM "${masters[@]}" 2>/dev/null || true
	for master in "${masters[@]}"; do
		[ "$master" = "$FLASKBOX_UWSGI_PID" ] || _stop_master_since "$started" "$master" "$1" || true
	done
	_stop_master_since "$started" "$FLASKBOX_UWSGI_PID" "$1" || status=$?
	return "$status"
}

# _stop_master_since STARTED PID MILLISECONDS
#   _stop_process for one uWSGI master, its budget and its workers' mercy
#   counted from STARTED (bash's EPOCHREALTIME, digits only: microseconds).
_stop_master_since() {
	local spent mercy=$((FLASKBOX_STOP_MERCY_SECONDS * 1000))
	spent=$(((${EPOCHREALTIME//[!0-9]/} - $1) / 1000))
	_stop_process "$2" TERM $(($3 > spent ? $3 - spent : 0)) $((mercy > spent ? mercy - spent : 0)) \
		_kill_busy_uwsgi_workers
}

# _stop_retirements
#   The subshells retiring a reload's old code, and the watches they run:
#   their masters are the stop's to end now (_stop_uwsgi).
_stop_retirements() {
	local pid
	for pid in "${!FLASKBOX_RETIRING[@]}"; do
		# shellcheck disable=SC2046 # one word per child
		kill -KILL "$pid" $(_process_children "$pid") 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		unset 'FLASKBOX_RETIRING[$pid]' 'FLASKBOX_RETIRING_GEN[$pid]'
	done
}

# _stop_helpers
#   The metrics server and the certificate watcher.
_stop_helpers() {
	local pid
	for pid in ${FLASKBOX_METRICS_PID:+"$FLASKBOX_METRICS_PID"} ${FLASKBOX_TLS_WATCH_PID:+"$FLASKBOX_TLS_WATCH_PID"}; do
		_stop_process "$pid" TERM $((FLASKBOX_STOP_KILL_AFTER_SECONDS * 1000)) || true
	done
}

# _prod_stop
#   Ordered graceful stop, inside docker's default 10 s grace: event streams
#   and WebSockets end cleanly, nginx stops accepting and drains requests in
#   flight (SIGQUIT, STOP_DRAIN_SECONDS: what is still sending then is cut,
#   and logged as cut), then uWSGI lets its now idle workers exit (SIGTERM,
#   STOP_MERCY_SECONDS); each is killed STOP_KILL_AFTER_SECONDS after its own
#   limit. Every generation still running stops alike.
_prod_stop() {
	local status=0 masters=()
	# One stop at a time: repeated signals while draining change nothing,
	# and a reload has nothing left to reload.
	trap '' TERM INT QUIT HUP
	if [ -z "${FLASKBOX_NGINX_PID:-}" ]; then
		# Still importing the app: nothing is served yet, and uWSGI acts on
		# SIGTERM only once its master loop runs.
		flaskbox_log "stopping before the app was ready"
		mapfile -t masters < <(_uwsgi_masters)
		kill -KILL "${masters[@]}" 2>/dev/null || true
		exit 0
	fi
	flaskbox_log "stopping: event streams end, nginx drains, then uWSGI"
	# flaskbox_draining in the metrics, which are served until the end. A
	# full disk may refuse the mark: the stop goes on all the same.
	: >"$RUNTIME_DIR/draining" ||
		flaskbox_error "cannot mark the stop in $RUNTIME_DIR (message above; a full disk?): the metrics will not show it"
	mapfile -t masters < <(_uwsgi_masters)
	_end_streams "${masters[@]}"
	_stop_process "$FLASKBOX_NGINX_PID" QUIT \
		$(((FLASKBOX_STOP_DRAIN_SECONDS + FLASKBOX_STOP_KILL_AFTER_SECONDS) * 1000)) || status=$?
	_stop_uwsgi $(((FLASKBOX_STOP_MERCY_SECONDS + FLASKBOX_STOP_KILL_AFTER_SECONDS) * 1000)) || status=$?
	_stop_helpers
	flaskbox_log "stopped"
	exit "$status"
}

# _drain_nginx PID...
#   nginx's master, or the workers a dead master left, answer what they can
#   for FLASKBOX_ABORT_DRAIN_MS (SIGQUIT), then stop at once (SIGTERM: each
#   worker still writes its buffered log lines), then are killed.
_drain_nginx() {
	local pids=("$@") started now pid alive signalled=''
	[ "${#pids[@]}" -gt 0 ] || return 0
	kill -QUIT "${pids[@]}" 2>/dev/null || true
	started="${EPOCHREALTIME//[!0-9]/}"
	while :; do
		alive=()
		for pid in "${pids[@]}"; do
			! kill -0 "$pid" 2>/dev/null || alive+=("$pid")
		done
		[ "${#alive[@]}" -gt 0 ] || return 0
		now="${EPOCHREALTIME//[!0-9]/}"
		if [ $((now - started)) -ge $(((FLASKBOX_ABORT_DRAIN_MS + 400) * 1000)) ]; then
			kill -KILL "${alive[@]}" 2>/dev/null || true
			return 0
		fi
		if [ -z "$signalled" ] && [ $((now - started)) -ge $((FLASKBOX_ABORT_DRAIN_MS * 1000)) ]; then
			kill -TERM "${alive[@]}" 2>/dev/null || true
			signalled=1
		fi
		_json_logs_keep_relaying
		sleep 0.02
	done
}

# _prod_abort WHAT STATUS
#   nginx's or the current uWSGI master died (a crash, kill -9, the OOM
#   killer): the container stops, non-zero, within 2 s, so that a restart
#   policy or an orchestrator replaces it. First nginx answers what it can
#   (a request on a dead uWSGI gets a logged 502) and writes its log: the
#   requests it answered are all in the access log.
_prod_abort() {
	local death
	trap '' TERM INT QUIT HUP
	death="$(_death "$1" "$2")"
	flaskbox_error "$death; stopping the container (nginx answers what it can and writes its log)"
	if [ "$1" = "uWSGI's master" ]; then
		# Its workers would go on for a moment with no master: they go now,
		# so that nginx answers their requests (502) and logs them.
		# shellcheck disable=SC2046 # one word per worker
		kill -KILL $(_children_named "flaskbox uWSGI worker") 2>/dev/null || true
		_drain_nginx "$FLASKBOX_NGINX_PID"
	else
		# nginx's workers outlive their master (PID 1 adopts them).
		# shellcheck disable=SC2046 # one word per worker
		_drain_nginx $(_children_named "nginx: worker process")
	fi
	_stop_uwsgi 300 || true
	_stop_helpers
	flaskbox_error "container stopped: $death"
	exit "$(($2 == 0 ? 1 : $2))"
}
