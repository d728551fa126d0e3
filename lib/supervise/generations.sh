#!/usr/bin/env bash
# uWSGI's pool as generations, each in a folder of its own,
# $RUNTIME_DIR/uwsgi/gN (app.ini's %(flaskbox_generation)): started, waited
# for until a worker accepts (an import past IMPORT_TIMEOUT named, a broken
# app's exit code read), its static location installed, and served (the
# `current` link swapped). The first generation at start; a reload's next
# one (reload.sh). Sourced by lib/supervise.sh.
# shellcheck disable=SC2034 # the state is shared by the parts of lib/supervise/ (state.sh)

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

# _abandon_generation N
#   A reload's generation N that will not serve (it failed, or what serves
#   meanwhile died): its master killed if it still runs, its folder gone.
_abandon_generation() {
	_stop_process "$FLASKBOX_STARTING_PID" KILL 1000 || true
	FLASKBOX_STARTING_PID=
	rm -rf "$(_gen_dir "$1")"
}

# _uwsgi_masters
#   Every uWSGI master running: the current one, those retiring, one
#   starting.
_uwsgi_masters() {
	printf '%s\n' "$FLASKBOX_UWSGI_PID" "${FLASKBOX_RETIRING[@]}" ${FLASKBOX_STARTING_PID:+"$FLASKBOX_STARTING_PID"}
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
