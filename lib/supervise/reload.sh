#!/usr/bin/env bash
# SIGHUP: a reload in place, never a stop. The app's code anew as the next
# generation beside the running one (generations.sh); once it accepts, nginx
# sends it every new request and the old one retires (retire.sh). nginx
# reloads only when its configuration changed. Sourced by lib/supervise.sh.
# shellcheck disable=SC2034 # the state is shared by the parts of lib/supervise/ (state.sh)

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

# _reload_uwsgi
#   The app's code anew, as a new generation started beside the running one
#   (the app is loaded in the master before the fork, so replacing workers
#   one by one would fork the old code again). Code that no longer imports is
#   logged and the running code stays. Once the new one accepts, nginx sends
#   it every new request, and the old one is retired in the background.
_reload_uwsgi() {
	local next=$((FLASKBOX_GENERATION + 1)) status=0 retired="$FLASKBOX_GENERATION" master="$FLASKBOX_UWSGI_PID" why=''
	if ! _uwsgi_start "$next"; then
		flaskbox_error "SIGHUP: cannot make the new code's folder in $RUNTIME_DIR (message above; a full disk?); still serving the code loaded before"
		return 0
	fi
	_uwsgi_wait_ready "$next" "$FLASKBOX_STARTING_PID" "$FLASKBOX_NGINX_PID" "$master" || status=$?
	if [ "$status" -eq "$FLASKBOX_RELOAD_ABANDONED" ]; then
		flaskbox_error "SIGHUP: a process serving the code loaded before (nginx's or uWSGI's master) ended while the new code loaded; the reload is abandoned"
		FLASKBOX_RELOAD_AGAIN=
		_abandon_generation "$next"
		return 0
	fi
	if [ "$status" -eq 22 ]; then
		why="APP_MODULE='$APP_MODULE' no longer imports (see above)"
	elif [ "$status" -ne 0 ]; then
		why="$(_uwsgi_failure "$status")"
	elif ! _static_install "$next"; then
		why="nginx rejected its configuration with the static location of the app's new code (message above: the static folder, or a drop-in in /app/nginx.d)"
	elif ! _generation_serve "$next"; then
		why="cannot point nginx at the new code in $RUNTIME_DIR (message above; a full disk?)"
	fi
	if [ -n "$why" ]; then
		flaskbox_error "SIGHUP: $why; still serving the code loaded before"
		_abandon_generation "$next"
		return 0
	fi
	FLASKBOX_GENERATION="$next"
	FLASKBOX_UWSGI_PID="$FLASKBOX_STARTING_PID"
	FLASKBOX_STARTING_PID=
	_retire_in_background "$retired" "$master"
	flaskbox_log "SIGHUP: uWSGI serves the app's new code (generation $next); the old code finishes what it holds (RELOAD_GRACE ${FLASKBOX_RELOAD_GRACE}s)"
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
