#!/usr/bin/env bash
# flaskbox entry point: picks the mode and hands off to the server.
#
#   entry-point.sh                 production: nginx -> uWSGI -> /app
#   entry-point.sh -d debug        Flask dev server with auto-reload
#   entry-point.sh -d production   same as no arguments
#   entry-point.sh -h              usage
#   entry-point.sh CMD [ARG...]    anything else is exec'd as it is
#
# Read top to bottom: defaults, validation, runtime files, then one hand-off.
# When sourced (healthcheck.sh does), only the functions are defined.
set -Eeuo pipefail

FLASKBOX_CONF_DIR="${FLASKBOX_CONF_DIR:-/etc/flaskbox}"

# flaskbox_log MESSAGE...
#   Info line on stdout, prefixed so it stands out among server logs.
flaskbox_log() {
	printf 'flaskbox: %s\n' "$*"
}

# flaskbox_error MESSAGE...
#   Error line on stderr. Errors are never silenced.
flaskbox_error() {
	printf 'flaskbox: error: %s\n' "$*" >&2
}

# flaskbox_usage
#   The usage text, on stdout; callers redirect it to stderr for errors.
flaskbox_usage() {
	cat <<-'EOF'
		Usage: entry-point.sh [-d production|debug] [-h]
		       entry-point.sh COMMAND [ARG...]

		  (no arguments)   production: nginx on $PORT (80) -> uWSGI -> /app
		  -d production    the same
		  -d debug         Flask dev server on $PORT (5000) with auto-reload
		  -h               show this help
		  COMMAND          run COMMAND instead, e.g. bash, flask shell

		APP_MODE=production|debug is the environment alternative to -d.
		Settings (PORT, APP_MODULE, MAX_BODY_SIZE, REQUEST_TIMEOUT, ...) are
		environment variables; see the README.
	EOF
}

# flaskbox_usage_error MESSAGE...
#   Bad input: say what is wrong, show usage, exit 2 before anything starts.
flaskbox_usage_error() {
	flaskbox_error "$*"
	flaskbox_usage >&2
	exit 2
}

# flaskbox_setup_env MODE
#   Every default lives here, once. PORT's default depends on MODE.
flaskbox_setup_env() {
	local mode="$1"
	local default_port=80
	[ "$mode" = debug ] && default_port=5000
	: "${PORT:=$default_port}"
	: "${APP_MODULE:=app:app}"
	: "${MAX_BODY_SIZE:=10m}"
	: "${REQUEST_TIMEOUT:=30}"
	: "${STATIC_URL:=/static}"
	: "${STATIC_PATH:=/app/static}"
	: "${RUNTIME_DIR:=/tmp/flaskbox}"
	STATIC_URL="${STATIC_URL%/}"
	STATIC_PATH="${STATIC_PATH%/}"
	export PORT APP_MODULE MAX_BODY_SIZE REQUEST_TIMEOUT STATIC_URL STATIC_PATH RUNTIME_DIR
}

# _require VAR REGEX DESCRIPTION
#   Exit 2 naming VAR and the accepted form unless its value matches REGEX.
_require() {
	local name="$1" regex="$2" form="$3"
	local value="${!name}"
	if ! [[ "$value" =~ $regex ]]; then
		flaskbox_usage_error "$name='$value' is not valid: expected $form"
	fi
}

# flaskbox_validate_env
#   Check every setting before anything starts.
flaskbox_validate_env() {
	_require PORT '^[0-9]{1,5}$' 'a port number from 1 to 65535'
	if [ "$((10#$PORT))" -lt 1 ] || [ "$((10#$PORT))" -gt 65535 ]; then
		flaskbox_usage_error "PORT='$PORT' is not valid: expected a port number from 1 to 65535"
	fi
	_require APP_MODULE '^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*)?$' \
		'module or module:callable, e.g. app:app or mypkg.wsgi:application'
	_require MAX_BODY_SIZE '^[0-9]+[kKmMgG]?$' 'a size such as 512k, 10m or 1g (0 disables the limit)'
	_require REQUEST_TIMEOUT '^[1-9][0-9]{0,4}$' 'a whole number of seconds, 1 or more'
	_require STATIC_URL '^/[A-Za-z0-9._~/-]*$' 'a URL path such as /static'
	_require STATIC_PATH '^/[A-Za-z0-9._~/-]*$' 'an absolute directory such as /app/static'
}

# flaskbox_parse_args ARG...
#   Sets FLASKBOX_MODE from -d or APP_MODE, handles -h, rejects anything
#   unknown. Only called when the first argument is an option (or absent).
flaskbox_parse_args() {
	FLASKBOX_MODE="${APP_MODE:-production}"
	local mode_source=APP_MODE
	local opt
	OPTIND=1
	while getopts ':hd:' opt; do
		case "$opt" in
			h) flaskbox_usage; exit 0 ;;
			d) FLASKBOX_MODE="$OPTARG"; mode_source='-d' ;;
			:) flaskbox_usage_error "option -$OPTARG needs a value: production or debug" ;;
			*) flaskbox_usage_error "unknown option: -$OPTARG" ;;
		esac
	done
	shift $((OPTIND - 1))
	[ "$#" -eq 0 ] || flaskbox_usage_error "unexpected argument: $1"
	case "$FLASKBOX_MODE" in
		production | debug) ;;
		*) flaskbox_usage_error "$mode_source '$FLASKBOX_MODE' is not a mode: expected production or debug" ;;
	esac
}

# flaskbox_prepare_runtime MODE
#   Creates the writable runtime directory (the only place written) and,
#   in production, renders nginx.conf into it.
flaskbox_prepare_runtime() {
	local mode="$1"
	if ! mkdir -p "$RUNTIME_DIR/nginx" 2>/dev/null || [ ! -w "$RUNTIME_DIR" ]; then
		flaskbox_error "RUNTIME_DIR '$RUNTIME_DIR' is not writable; on a read-only root add --tmpfs /tmp"
		exit 1
	fi
	printf '%s %s\n' "$mode" "$PORT" >"$RUNTIME_DIR/state"
	[ "$mode" = production ] || return 0
	# nginx waits a little longer than harakiri, so uWSGI answers first.
	export UPSTREAM_TIMEOUT=$((REQUEST_TIMEOUT + 5))
	# Only our variables are substituted; nginx's $uri, $host stay intact.
	# shellcheck disable=SC2016 # the list is literal on purpose
	envsubst '${PORT} ${RUNTIME_DIR} ${MAX_BODY_SIZE} ${UPSTREAM_TIMEOUT} ${STATIC_URL} ${STATIC_PATH}' \
		<"$FLASKBOX_CONF_DIR/nginx.conf" >"$RUNTIME_DIR/nginx.conf"
}

# flaskbox_uwsgi_args
#   uWSGI options from UWSGI_* variables, as command-line flags placed after
#   app.ini so that the user's value wins, then removed from the environment
#   so uWSGI does not read them a second time (list options would double).
flaskbox_uwsgi_args() {
	FLASKBOX_UWSGI_ARGS=()
	local var option
	for var in $(compgen -e); do
		[[ "$var" == UWSGI_* ]] || continue
		option="${var#UWSGI_}"
		option="${option,,}"
		FLASKBOX_UWSGI_ARGS+=("--${option//_/-}" "${!var}")
		unset "$var"
	done
}

# flaskbox_start_debug
#   exec the Flask dev server: reloader on, interactive debugger on.
flaskbox_start_debug() {
	cat >&2 <<-EOF
		flaskbox: WARNING: debug mode runs the Werkzeug debugger, which lets anyone
		flaskbox: who reaches port $PORT run code in this container. Publish it
		flaskbox: on this machine only: docker run -p 127.0.0.1:$PORT:$PORT ...
		flaskbox: Never use debug mode in production.
	EOF
	# No __pycache__ written into the bind-mounted source.
	export PYTHONDONTWRITEBYTECODE=1 FLASK_DEBUG=1
	cd /app
	exec python -m flask --app "$APP_MODULE" --debug run --host 0.0.0.0 --port "$PORT"
}

# _prod_wait_for_socket
#   nginx starts only once uWSGI has bound its socket, so the first requests
#   queue in the backlog instead of getting 502. Fails if uWSGI dies first.
_prod_wait_for_socket() {
	local socket="$RUNTIME_DIR/uwsgi.sock"
	until [ -S "$socket" ]; do
		if ! kill -0 "$FLASKBOX_UWSGI_PID" 2>/dev/null; then
			local status=0
			wait "$FLASKBOX_UWSGI_PID" || status=$?
			flaskbox_error "uWSGI exited with code $status before it was ready; see its log above"
			exit "$((status == 0 ? 1 : status))"
		fi
		sleep 0.05
	done
}

# _wait_for_exit PID
#   Wait until PID has exited, even if trapped signals interrupt `wait`;
#   returns its exit code.
_wait_for_exit() {
	local pid="$1" status=0
	while kill -0 "$pid" 2>/dev/null; do
		status=0
		wait "$pid" 2>/dev/null || status=$?
	done
	return "$status"
}

# _prod_stop
#   Ordered graceful stop: nginx stops accepting and drains in-flight
#   requests (SIGQUIT), then uWSGI finishes its idle workers (SIGTERM).
_prod_stop() {
	local status=0
	# One stop at a time: repeated signals while draining change nothing.
	trap '' TERM INT QUIT
	flaskbox_log "stopping: nginx drains, then uWSGI"
	if [ -n "${FLASKBOX_NGINX_PID:-}" ]; then
		kill -QUIT "$FLASKBOX_NGINX_PID" 2>/dev/null || true
		_wait_for_exit "$FLASKBOX_NGINX_PID" || status=$?
	fi
	kill -TERM "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
	_wait_for_exit "$FLASKBOX_UWSGI_PID" || status=$?
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
	flaskbox_uwsgi_args
	FLASKBOX_NGINX_PID=
	# The stop runs inside the trap, so a signal arriving at any moment
	# (even before nginx has started) stops whatever is running, in order.
	trap _prod_stop TERM INT QUIT

	uwsgi --ini "$FLASKBOX_CONF_DIR/app.ini" "${FLASKBOX_UWSGI_ARGS[@]}" &
	FLASKBOX_UWSGI_PID=$!
	_prod_wait_for_socket
	nginx -e stderr -c "$RUNTIME_DIR/nginx.conf" &
	FLASKBOX_NGINX_PID=$!
	flaskbox_log "serving $APP_MODULE on port $PORT (nginx $FLASKBOX_NGINX_PID, uWSGI $FLASKBOX_UWSGI_PID)"

	local exited='' status=0
	# Returns only when a server exits on its own (a stop signal's trap
	# exits from inside the wait).
	until [ -n "$exited" ]; do
		status=0
		wait -n -p exited "$FLASKBOX_UWSGI_PID" "$FLASKBOX_NGINX_PID" || status=$?
	done
	local name=nginx
	[ "$exited" = "$FLASKBOX_UWSGI_PID" ] && name=uWSGI
	flaskbox_error "$name exited unexpectedly with code $status; stopping the container"
	exit "$((status == 0 ? 1 : status))"
}

# main ARG...
#   Options (or nothing) start a server; any other command is exec'd.
main() {
	if [ "$#" -gt 0 ] && [[ "$1" != -* ]]; then
		exec "$@"
	fi
	flaskbox_parse_args "$@"
	flaskbox_setup_env "$FLASKBOX_MODE"
	flaskbox_validate_env
	flaskbox_prepare_runtime "$FLASKBOX_MODE"
	if [ "$FLASKBOX_MODE" = debug ]; then
		flaskbox_start_debug
	fi
	flaskbox_start_production
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
