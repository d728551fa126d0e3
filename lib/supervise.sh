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

# How long nginx may go on answering when a server died: the container must
# be gone within 2 s.
FLASKBOX_ABORT_DRAIN_MS=1000

# _gen_dir N
#   The folder of generation N.
_gen_dir() {
	printf '%s/uwsgi/g%s' "$RUNTIME_DIR" "$1"
}

# _uwsgi_start N
#   Starts generation N of the pool in the background: FLASKBOX_STARTING_PID.
_uwsgi_start() {
	local dir
	dir="$(_gen_dir "$1")"
	rm -rf "$dir"
	mkdir -p "$dir" || return 1
	# uWSGI's stdout (and so the app's print()) joins stderr: stdout is kept
	# for nginx's access log, one line per request.
	uwsgi --set-placeholder "flaskbox_generation=$dir" --ini "$RUNTIME_DIR/uwsgi.ini" >&2 &
	FLASKBOX_STARTING_PID=$!
}

# _uwsgi_wait_ready N PID [SERVING...]
#   Waits until a worker of generation N accepts requests (app.ini's
#   hook-accepting1-once). Returns non-zero, the master's exit code, if it
#   exited first: a broken app, or a pool that cannot stay up. In a reload,
#   SERVING are the processes that serve meanwhile (nginx's master, the
#   running uWSGI master): the supervisor waits here, not on them, so if one
#   of them dies this returns FLASKBOX_RELOAD_ABANDONED at once, for the
#   supervisor to act on (a slow or hung import must not keep a dead
#   container up); a helper that dies meanwhile starts again. Every
#   FLASKBOX_RELOAD_NOTE_EVERY seconds it says that the new code is still
#   loading.
FLASKBOX_RELOAD_ABANDONED=254
FLASKBOX_RELOAD_NOTE_EVERY=30
# An import past IMPORT_TIMEOUT, as GNU timeout says it.
FLASKBOX_TIMED_OUT=124
_uwsgi_wait_ready() {
	local dir status=0 pid waited=0 started="$EPOCHSECONDS"
	dir="$(_gen_dir "$1")"
	until [ -e "$dir/ready" ]; do
		if ! kill -0 "$2" 2>/dev/null; then
			wait "$2" 2>/dev/null || status=$?
			_uwsgi_import_timed_out "$dir" && return "$FLASKBOX_TIMED_OUT"
			return "$((status == 0 ? 1 : status))"
		fi
		if _uwsgi_import_overdue "$started"; then
			# faulthandler's thread should have ended it (flaskbox/importing.py).
			kill -KILL "$2" 2>/dev/null || true
			wait "$2" 2>/dev/null || true
			_uwsgi_import_timed_out "$dir" || flaskbox_error "APP_MODULE='$APP_MODULE' did not import" \
				"within IMPORT_TIMEOUT (${FLASKBOX_IMPORT_TIMEOUT} s), nor stop; its uWSGI master is killed"
			return "$FLASKBOX_TIMED_OUT"
		fi
		for pid in "${@:3}"; do
			kill -0 "$pid" 2>/dev/null || return "$FLASKBOX_RELOAD_ABANDONED"
		done
		[ $# -lt 3 ] || _prod_restart_dead_helpers
		sleep 0.05
		waited=$((waited + 1))
		if [ $# -gt 2 ] && [ $((waited % (FLASKBOX_RELOAD_NOTE_EVERY * 20))) -eq 0 ]; then
			flaskbox_log "SIGHUP: the new code has been loading for $((waited / 20)) s; the code loaded before serves meanwhile"
		fi
	done
}

# _uwsgi_import_timed_out DIR
#   True when generation DIR's import ran past IMPORT_TIMEOUT: its stacks
#   are there (flaskbox/importing.py, Deadline), and said with where it waited.
_uwsgi_import_timed_out() {
	[ -s "$1/import-stacks" ] || return 1
	python3 -I -m flaskbox import-stacks "$1/import-stacks" "$APP_MODULE" "$FLASKBOX_IMPORT_TIMEOUT" || true
}

# _uwsgi_import_overdue STARTED
#   True 10 s past IMPORT_TIMEOUT since STARTED (epoch seconds): a master
#   its own deadline did not end.
_uwsgi_import_overdue() {
	[ "$FLASKBOX_IMPORT_TIMEOUT" -gt 0 ] && [ $((EPOCHSECONDS - $1)) -gt $((FLASKBOX_IMPORT_TIMEOUT + 10)) ]
}

# _uwsgi_failure STATUS
#   What a generation's exit code before it was ready means.
_uwsgi_failure() {
	case "$1" in
		# need-app's exit code: the import failed (traceback above).
		22) printf "could not load APP_MODULE='%s': see the traceback above" "$APP_MODULE" ;;
		# wsgi.py: the module holds no app (its message is above).
		2) printf "APP_MODULE='%s' does not name an app (see above)" "$APP_MODULE" ;;
		# wsgi.py's RUNTIME_UNWRITABLE: flaskbox's own file, not the app.
		73) printf 'uWSGI could not write its files in %s (message above; a full disk?)' "$RUNTIME_DIR" ;;
		"$FLASKBOX_TIMED_OUT")
			printf "APP_MODULE='%s' did not import within IMPORT_TIMEOUT (%s s; where it waited is above)" \
				"$APP_MODULE" "$FLASKBOX_IMPORT_TIMEOUT"
			;;
		*) printf 'uWSGI exited with code %s before it was ready; see its log above' "$1" ;;
	esac
}

# _static_install N
#   Puts the static location generation N's app asked for (wsgi.py) where
#   nginx.conf includes it, and lets `nginx -t` judge the whole; on failure
#   the previous one is put back and this returns non-zero.
_static_install() {
	local wanted installed="$RUNTIME_DIR/nginx/static.conf"
	wanted="$(_gen_dir "$1")/static.conf"
	[ -e "$wanted" ] || return 0
	# Unchanged: nothing to judge (a drop-in nginx rejects must not hold
	# back the app's code; _nginx_apply_config names it).
	[ "$(<"$wanted")" != "$(<"$installed")" ] || return 0
	cp "$installed" "$installed.previous"
	cp "$wanted" "$installed"
	if ! nginx -t -q -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf"; then
		mv "$installed.previous" "$installed"
		return 1
	fi
	rm -f "$installed.previous"
}

# _generation_serve N
#   nginx sends new requests to generation N from now on: its link replaces
#   the previous one in one rename.
_generation_serve() {
	ln -sfn "g$1" "$RUNTIME_DIR/uwsgi/current.new" &&
		mv -T "$RUNTIME_DIR/uwsgi/current.new" "$RUNTIME_DIR/uwsgi/current"
}

# _process_children PID
#   The children of a process.
_process_children() {
	local children_file="/proc/$1/task/$1/children"
	[ -r "$children_file" ] || return 0
	echo "$(<"$children_file")"
}

# _children_named TEXT
#   This shell's children whose command line starts with TEXT: the workers a
#   dead master left (PID 1 adopts them).
_children_named() {
	local child cmdline
	for child in $(_process_children "$$"); do
		cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$child/cmdline")" || continue
		[[ "$cmdline" != "$1"* ]] || printf '%s\n' "$child"
	done
}

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

# _stop_process PID SIGNAL MILLISECONDS [AT_MILLISECONDS ACTION]
#   Sends SIGNAL, waits up to MILLISECONDS for the process to exit, then kills
#   it (SIGKILL) and returns 137. Otherwise returns the process's exit code.
#   ACTION, if given, is called once with PID after AT_MILLISECONDS. Times
#   are read from the clock, so a loaded machine does not stretch the budget.
_stop_process() {
	local pid="$1" signal="$2" limit="$3" at="${4:-}" action="${5:-}" status=0 started now
	# bash's own clock, in microseconds (its decimal separator follows the
	# locale, so any non-digit is dropped): no fork per poll.
	started="${EPOCHREALTIME//[!0-9]/}"
	kill -"$signal" "$pid" 2>/dev/null || true
	while _alive "$pid"; do
		now="${EPOCHREALTIME//[!0-9]/}"
		if [ $((now - started)) -ge $((limit * 1000)) ]; then
			flaskbox_error "pid $pid still running $((limit / 1000)).$((limit % 1000 / 100))s after SIG$signal; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			return 137
		fi
		if [ -n "$action" ] && [ $((now - started)) -ge $((at * 1000)) ]; then
			"$action" "$pid"
			action=""
		fi
		_json_logs_keep_relaying
		sleep 0.02
	done
	wait "$pid" 2>/dev/null || status=$?
	return "$status"
}

# _alive PID
#   True while PID runs: a zombie (ended, not yet reaped by its parent,
#   which for a retiring master is PID 1, not the subshell asking) has
#   ended. Builtins only: it is polled every 20 ms.
_alive() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat="${stat##*) }"
	[ "${stat%% *}" != Z ]
}

# _kill_busy_uwsgi_workers MASTER_PID
#   uWSGI 2.0 does not enforce worker-reload-mercy in a graceful stop
#   (measured: a stuck handler ran until docker's SIGKILL), so the workers
#   still running once the mercy is over are killed here. nginx has drained
#   first, so no client is waiting on them by then. Zombies (workers that
#   finished, not yet reaped by the master) are left alone. The log says a
#   request was cut only for a worker in one (flaskbox/generations.py); the
#   others are idle workers of a master slow to stop.
_kill_busy_uwsgi_workers() {
	local child running=() busy
	for child in $(_process_children "$1"); do
		! _alive "$child" || running+=("$child")
	done
	[ "${#running[@]}" -gt 0 ] || return 0
	busy="$(python3 -I -m flaskbox busy-workers "$RUNTIME_DIR/uwsgi" "${running[@]}")" || busy="${running[*]}"
	if [ -n "$busy" ]; then
		flaskbox_error "uWSGI worker(s) $busy still in a request past their budget; killing them (their requests are cut)"
	fi
	if [ "$busy" != "${running[*]}" ]; then
		flaskbox_warn "uWSGI master $1 is slow to stop its idle workers; killing them past their budget (no request was in flight)"
	fi
	kill -KILL "${running[@]}" 2>/dev/null || true
}

# _retire_in_background N MASTER_PID
#   _retire_generation in a subshell the supervisor watches
#   (FLASKBOX_RETIRING, FLASKBOX_RETIRING_GEN).
_retire_in_background() {
	_retire_generation "$1" "$2" &
	FLASKBOX_RETIRING["$!"]="$2"
	FLASKBOX_RETIRING_GEN["$!"]="$1"
}

# _retired SUBSHELL_PID STATUS
#   A retirement ended. If its master still runs (the subshell was killed),
#   it starts again: left alone, the old pool would run for good, and out
#   of the count of pools a pids limit has room for.
_retired() {
	local master="${FLASKBOX_RETIRING[$1]:-}" gen="${FLASKBOX_RETIRING_GEN[$1]:-}"
	unset 'FLASKBOX_RETIRING[$1]' 'FLASKBOX_RETIRING_GEN[$1]'
	if _alive "$master"; then
		flaskbox_error "reload: the retirement of the old code (generation $gen) ended with code $2 while its uWSGI master still runs; started again"
		_retire_in_background "$gen" "$master"
	elif [ -n "$FLASKBOX_RELOAD_WAITING" ]; then
		FLASKBOX_RELOAD_WAITING=
		_prod_reload
	fi
}

# _generation_idle DIR MASTER_PID DEADLINE
#   Returns 0 once generation DIR holds no request, 3 at DEADLINE (epoch
#   seconds), 4 if its master ended first, with how many it held then in
#   FLASKBOX_IDLE_LEFT (flaskbox/generations.py). A watcher that ended
#   otherwise (killed, crashed) says nothing of the requests: it is started
#   again on what is left of the grace.
_generation_idle() {
	local status
	while :; do
		status=0
		FLASKBOX_IDLE_LEFT="$(python3 -I -m flaskbox generation-idle "$1" "$2" \
			$(($3 > EPOCHSECONDS ? $3 - EPOCHSECONDS : 0)))" || status=$?
		case "$status" in
			0 | 3 | 4) return "$status" ;;
		esac
		flaskbox_error "reload: the watch on the old code's requests ended with code $status; watching again"
		sleep 1
	done
}

# _retire_generation N MASTER_PID
#   Run in the background once generation N no longer gets new requests:
#   its event streams and WebSockets end cleanly now; the rest it holds
#   (requests, downloads, other streams) has RELOAD_GRACE to finish
#   (flaskbox/generations.py watches its queue and connections), past which
#   its workers are killed, a cut its clients and nginx's log see. Then its
#   master stops, and its folder goes.
_retire_generation() {
	local gen="$1" master="$2" dir mercy=$((FLASKBOX_STOP_MERCY_SECONDS * 1000)) idle=0 stopped=0
	dir="$(_gen_dir "$gen")"
	trap - TERM INT QUIT HUP
	_end_streams "$master"
	_generation_idle "$dir" "$master" $((EPOCHSECONDS + FLASKBOX_RELOAD_GRACE)) || idle=$?
	case "$idle" in
		3)
			flaskbox_error "reload: ${FLASKBOX_IDLE_LEFT:-some} request(s) of the old code still in flight after RELOAD_GRACE (${FLASKBOX_RELOAD_GRACE}s): cut"
			mercy=0 # its master stops first, so that it forks no new worker
			;;
		4)
			rm -rf "$dir"
			if [ "${FLASKBOX_IDLE_LEFT:-0}" -gt 0 ]; then
				flaskbox_error "reload: the old code's uWSGI master (generation $gen) ended before its requests did (killed?): the $FLASKBOX_IDLE_LEFT it held were cut"
			else
				flaskbox_warn "reload: the old code's uWSGI master (generation $gen) ended before it was told to stop, holding no request"
			fi
			return 0
			;;
	esac
	_stop_process "$master" TERM $((mercy + FLASKBOX_STOP_KILL_AFTER_SECONDS * 1000)) "$mercy" \
		_kill_busy_uwsgi_workers || stopped=$?
	rm -rf "$dir"
	if [ "$idle" -ne 0 ]; then
		flaskbox_log "reload: the old code (generation $gen) has stopped"
	elif [ "$stopped" -eq 137 ]; then
		flaskbox_log "reload: the old code (generation $gen) has finished its requests; its master, slow to stop, was killed"
	else
		flaskbox_log "reload: the old code (generation $gen) has finished its requests and stopped"
	fi
}

# _nginx_apply_config
#   After a reload of the app: nginx reloads its configuration only when it
#   changed (a drop-in in /app/nginx.d, the app's static folder), since its
#   old workers then end the connections they hold within the stop's budget.
#   A configuration `nginx -t` rejects is not loaded: the running one stays.
_nginx_apply_config() {
	local digest
	digest="$(python3 -I -m flaskbox nginx-digest)" || return 0
	[ "$digest" != "$FLASKBOX_NGINX_DIGEST" ] || return 0
	if ! nginx -t -q -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf"; then
		flaskbox_error "SIGHUP: nginx rejected its configuration (message above); still serving the previous one"
		return 0
	fi
	FLASKBOX_NGINX_DIGEST="$digest"
	kill -HUP "$FLASKBOX_NGINX_PID" 2>/dev/null || true
	flaskbox_log "SIGHUP: nginx reloads its configuration, which changed"
}

# _reload_uwsgi
#   The app's code anew, as a new generation started beside the running one
#   (the app is loaded in the master before the fork, so replacing workers
#   one by one would fork the old code again). Code that no longer imports is
#   logged and the running code stays. Once the new one accepts, nginx sends
#   it every new request, and the old one is retired in the background.
_reload_uwsgi() {
	local next=$((FLASKBOX_GENERATION + 1)) status=0 retired="$FLASKBOX_GENERATION" master="$FLASKBOX_UWSGI_PID"
	if ! _uwsgi_start "$next"; then
		flaskbox_error "SIGHUP: cannot make the new code's folder in $RUNTIME_DIR (message above; a full disk?); still serving the code loaded before"
		return 0
	fi
	_uwsgi_wait_ready "$next" "$FLASKBOX_STARTING_PID" "$FLASKBOX_NGINX_PID" "$master" || status=$?
	if [ "$status" -eq "$FLASKBOX_RELOAD_ABANDONED" ]; then
		flaskbox_error "SIGHUP: a process serving the code loaded before (nginx's or uWSGI's master) ended while the new code loaded; the reload is abandoned"
		_stop_process "$FLASKBOX_STARTING_PID" KILL 1000 || true
	fi
	if [ "$status" -ne 0 ]; then
		FLASKBOX_STARTING_PID=
		rm -rf "$(_gen_dir "$next")"
		if [ "$status" -eq "$FLASKBOX_RELOAD_ABANDONED" ]; then
			FLASKBOX_RELOAD_AGAIN=
			return 0
		elif [ "$status" -eq 22 ]; then
			flaskbox_error "SIGHUP: APP_MODULE='$APP_MODULE' no longer imports (see above); still serving the code loaded before"
		else
			flaskbox_error "SIGHUP: $(_uwsgi_failure "$status"); still serving the code loaded before"
		fi
		return 0
	fi
	if ! _static_install "$next"; then
		flaskbox_error "SIGHUP: nginx rejected its configuration with the static location of the app's new code (message above: the static folder, or a drop-in in /app/nginx.d); still serving the code loaded before"
		_stop_process "$FLASKBOX_STARTING_PID" KILL 1000 || true
		FLASKBOX_STARTING_PID=
		rm -rf "$(_gen_dir "$next")"
		return 0
	fi
	if ! _generation_serve "$next"; then
		flaskbox_error "SIGHUP: cannot point nginx at the new code in $RUNTIME_DIR (message above; a full disk?); still serving the code loaded before"
		_stop_process "$FLASKBOX_STARTING_PID" KILL 1000 || true
		FLASKBOX_STARTING_PID=
		rm -rf "$(_gen_dir "$next")"
		return 0
	fi
	FLASKBOX_GENERATION="$next"
	FLASKBOX_UWSGI_PID="$FLASKBOX_STARTING_PID"
	FLASKBOX_STARTING_PID=
	_retire_in_background "$retired" "$master"
	flaskbox_log "SIGHUP: uWSGI serves the app's new code (generation $next); the old code finishes what it holds (RELOAD_GRACE ${FLASKBOX_RELOAD_GRACE}s)"
}

# _prod_reload
#   SIGHUP (docker kill -s HUP, kill -HUP 1): reload in place, never a stop.
#   What is reloaded: the certificate files (if they changed), the app's
#   code, and nginx's configuration (if the drop-ins or the static folder
#   changed); not the settings, which need a restart.
#   A SIGHUP that comes while a reload runs (bash runs the trap again,
#   inside the one running) is noted, and one more reload follows this one:
#   two at once would start two new generations in the same folder.
_prod_reload() {
	if [ -z "${FLASKBOX_NGINX_PID:-}" ]; then
		flaskbox_log "SIGHUP while starting: nothing to reload yet, ignored"
		return 0
	fi
	if [ -n "${FLASKBOX_RELOADING:-}" ]; then
		FLASKBOX_RELOAD_AGAIN=1
		flaskbox_log "SIGHUP during a reload: another reload follows this one"
		return 0
	fi
	FLASKBOX_RELOADING=1
	FLASKBOX_RELOAD_AGAIN=1
	while [ -n "$FLASKBOX_RELOAD_AGAIN" ]; do
		FLASKBOX_RELOAD_AGAIN=
		_prod_reload_once
	done
	FLASKBOX_RELOADING=
}

# _prod_reload_once
#   One reload in place.
_prod_reload_once() {
	flaskbox_log "SIGHUP: reloading in place (the app's code, nginx's configuration and certificate if they changed; settings need a restart)"
	[ -z "${TLS_CERT:-}" ] || python3 -I -m flaskbox tls-apply || true
	if [ "$FLASKBOX_RELOAD_ROOM" != 1 ]; then
		flaskbox_error "SIGHUP: the pids limit leaves no room for the new code's pool beside the running one; still serving the code loaded before (restart the container, or raise the limit)"
	elif [ "${#FLASKBOX_RETIRING[@]}" -gt 0 ] && ! python3 -I -m flaskbox reload-room; then
		# RELOAD_ROOM counted two pools; the pool of an earlier reload still
		# finishing its requests is a third. Cutting them would end their
		# downloads: the new code waits for that pool to end instead.
		FLASKBOX_RELOAD_WAITING=1
		flaskbox_log "SIGHUP: the code of an earlier reload still finishes its requests (RELOAD_GRACE ${FLASKBOX_RELOAD_GRACE}s) and the pids limit has no room for a third pool: the new code is loaded once that ends"
	else
		_reload_uwsgi
	fi
	_nginx_apply_config
}

# _uwsgi_masters
#   Every uWSGI master running: the current one, those retiring, one
#   starting.
_uwsgi_masters() {
	printf '%s\n' "$FLASKBOX_UWSGI_PID" "${FLASKBOX_RETIRING[@]}" ${FLASKBOX_STARTING_PID:+"$FLASKBOX_STARTING_PID"}
}

# _stop_uwsgi MILLISECONDS
#   Every uWSGI master stops gracefully (its idle workers exit); past the
#   mercy the workers still busy are killed, past MILLISECONDS the masters.
#   One clock for all of them, the retiring generations' (a reload's) and
#   then the current one's: another generation must not add a budget of its
#   own to a stop that docker ends after 10 s.
_stop_uwsgi() {
	local master status=0 masters=() started
	started="${EPOCHREALTIME//[!0-9]/}"
	mapfile -t masters < <(_uwsgi_masters)
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

# _stop_helpers
#   The metrics server, the certificate watcher and retirements in progress.
_stop_helpers() {
	local pid
	for pid in ${FLASKBOX_METRICS_PID:+"$FLASKBOX_METRICS_PID"} ${FLASKBOX_TLS_WATCH_PID:+"$FLASKBOX_TLS_WATCH_PID"} \
		"${!FLASKBOX_RETIRING[@]}"; do
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

# _death WHAT STATUS
#   How a server ended, for the last words: its exit code, or the signal
#   that killed it, and whether the kernel's OOM killer did.
_death() {
	local status="$2" kills
	if [ "$status" -le 128 ]; then
		printf '%s exited with code %s' "$1" "$status"
		return 0
	fi
	printf '%s was killed by signal %s' "$1" "$((status - 128))"
	# The OOM killer sends SIGKILL and nothing else.
	[ "$status" -eq 137 ] || return 0
	kills="$(python3 -I -m flaskbox oom-kills 2>/dev/null)" || return 0
	if [ -n "$kills" ] && [ "$kills" -gt "${FLASKBOX_OOM_KILLS:-0}" ]; then
		printf ", by the kernel's OOM killer (the container's memory limit)"
	fi
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

# _nginx_wait_listening
#   Returns once nginx holds its ports: it writes its pid file only after
#   it has bound every listen socket. If it exits first (a port taken since
#   the settings were checked), the container stops, saying so.
_nginx_wait_listening() {
	until [ "$(cat "$RUNTIME_DIR/nginx/nginx.pid" 2>/dev/null)" = "$FLASKBOX_NGINX_PID" ]; do
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

# _tls_watch_start
#   With TLS on, the watcher that puts a renewed certificate in use
#   (flaskbox/certificates.py).
_tls_watch_start() {
	[ -n "${TLS_CERT:-}" ] || return 0
	python3 -I -m flaskbox tls-watch &
	FLASKBOX_TLS_WATCH_PID=$!
}

# _prod_start_pool
#   Generation 1 of the pool, serving once a worker accepts; a broken app
#   stops the start with its exit code (22: import failed, 2: no app).
_prod_start_pool() {
	local status=0
	FLASKBOX_GENERATION=1
	rm -rf "$RUNTIME_DIR/uwsgi"
	_uwsgi_start 1
	FLASKBOX_UWSGI_PID="$FLASKBOX_STARTING_PID"
	_uwsgi_wait_ready 1 "$FLASKBOX_UWSGI_PID" || status=$?
	if [ "$status" -ne 0 ]; then
		# A broken app is the user's to fix: said so, and not served.
		case "$status" in
			22 | 2 | "$FLASKBOX_TIMED_OUT") flaskbox_error "$(_uwsgi_failure "$status"); not serving" ;;
			*) flaskbox_error "$(_uwsgi_failure "$status")" ;;
		esac
		exit "$status"
	fi
	FLASKBOX_STARTING_PID=
	if ! _static_install 1; then
		flaskbox_error "nginx rejected the static location for the app's static folder (message above)"
		kill -KILL "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		exit 2
	fi
	_generation_serve 1
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
			wait -n -p exited "${pids[@]}" || status=$?
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
	FLASKBOX_NGINX_PID='' FLASKBOX_METRICS_PID='' FLASKBOX_TLS_WATCH_PID='' FLASKBOX_STARTING_PID='' FLASKBOX_UWSGI_PID=''
	FLASKBOX_RELOADING='' FLASKBOX_RELOAD_AGAIN='' FLASKBOX_RELOAD_WAITING=''
	# Retiring generations: the retiring subshell's pid -> its master's,
	# and -> the generation's number.
	declare -gA FLASKBOX_RETIRING=() FLASKBOX_RETIRING_GEN=()
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
