#!/usr/bin/env bash
# flaskbox entry point: picks the mode and hands off to the servers.
#
#   entry-point.sh                 production: nginx -> uWSGI -> /app
#   entry-point.sh -d debug        Flask dev server with auto-reload
#   entry-point.sh -d production   same as no arguments
#   entry-point.sh -h              usage
#   entry-point.sh CMD [ARG...]    anything else is exec'd as it is
#
# main() at the bottom reads like a table of contents. bash prepares and
# hands off: the secrets, the step down from root, the hooks; the data work
# (settings, their defaults and checks, rendering the configs) is flaskbox's
# Python ($FLASKBOX_LIB/flaskbox), run once before the servers start. The
# other steps live beside it in lib/: logging and the variables Python
# hands this shell (common.sh), INSTALL_ON_START (install-on-start.sh) and
# the drop-in hooks (hooks.sh).
#
# It is the image's ENTRYPOINT, so PID 1, and in production it execs PID 1
# into the arbiter (flaskbox/arbiter/, Python): it supervises the servers,
# reaping orphans as an init must, and nothing inside the container can
# kill it (the kernel keeps signals from PID 1 unless it handles them): the
# supervisor of the servers cannot vanish and take the container down
# without a word. Debug mode and any other command run under tini instead
# (flaskbox_exec), which forwards signals to them and reaps.
set -Eeuo pipefail

# The stop signals (TERM, INT, QUIT) come held: the Dockerfile's ENTRYPOINT
# is `env --block-signal=TERM,INT,QUIT entry-point.sh`. PID 1 drops a
# signal whose action is the default, and bash's own start (here, and again
# after the step down) runs before any trap: from the exec, the #! line's
# env, then bash up to its traps, took 3.5 ms (median of 300 starts under
# strace on 2 loaded CPUs; p90 5.2 ms), and beside two busy CPU loops 3 runs
# of tests/test_stop_anytime.py in 10 lost a stop so, Docker's SIGKILL
# ending the container (137). Held, a stop waits, pending, across every
# exec (the step down's, the arbiter's); only env's own start is left, up
# to its block: 1.3 ms (p90 2.1 ms), and 10 runs in 10 passed. bash cannot
# unblock them again, so this shell acts on a pending one at each step
# (flaskbox_held_stop), and runs whatever is not ours (the hooks, pip, a
# command, the dev server) through flaskbox_unheld. SIGHUP stays unblocked:
# an early one is only logged, and a held one would make the arbiter reload
# the moment it starts.

# flaskbox_early_signals
#   Before the servers run: a stop signal ends the start (as PID 1 the
#   shell would ignore it), once the step in progress (a hook) is done,
#   with 128 + the signal, as the arbiter's start does (flaskbox/layout.py);
#   a SIGHUP (a closing terminal, `docker kill -s HUP`) never ends it: once
#   serving, it reloads (the arbiter; the dev server: debug.py). The traps
#   act when the stop signals are not held (another --entrypoint, this file
#   run by a hook or a test): set first of all, before the files this
#   script sources (which took 2 ms more to read). Held, they never fire,
#   and flaskbox_held_stop does their work.
flaskbox_early_signals() {
	trap 'exit 143' TERM
	trap 'exit 130' INT
	trap 'exit 131' QUIT
	# flaskbox_log is common.sh's, sourced below: said once it is there.
	trap '! declare -F flaskbox_log >/dev/null ||
		flaskbox_log "SIGHUP while starting: nothing to reload yet, ignored"' HUP
}

# flaskbox_held_stop
#   A stop signal that came held (blocked) and waits, pending, ends the
#   start now, with 128 + the signal, as its trap would have. Called
#   between the steps of main, so a stop ends the start once the step in
#   progress is done; one that comes after the last call waits for the
#   arbiter's handlers (flaskbox_start_production).
flaskbox_held_stop() {
	flaskbox_held
	[ -z "$FLASKBOX_HELD" ] || exit "$FLASKBOX_HELD"
}

# flaskbox_held
#   FLASKBOX_HELD: 128 + the stop signal pending for this shell, or empty.
#   Read from /proc/self/status with builtins, no fork (a subshell would
#   read its own): this thread's pending signals (SigPnd) and its
#   process's (ShdPnd, what kill and docker stop send). A status without
#   them (no such kernel) leaves it empty: the traps are all there is.
flaskbox_held() {
	local status='' pending=0
	FLASKBOX_HELD=''
	IFS= read -r -d '' status </proc/self/status || true
	# One match (0.1 to 0.2 ms; two took half as long again): the lines follow each other.
	[[ "$status" =~ SigPnd:[[:space:]]*([0-9a-f]+).ShdPnd:[[:space:]]*([0-9a-f]+) ]] &&
		pending=$((16#${BASH_REMATCH[1]} | 16#${BASH_REMATCH[2]}))
	# Bit N-1 is signal N: TERM (15) first, then INT (2), QUIT (3).
	if ((pending & 1 << 14)); then
		FLASKBOX_HELD=143
	elif ((pending & 1 << 1)); then
		FLASKBOX_HELD=130
	elif ((pending & 1 << 2)); then
		FLASKBOX_HELD=131
	fi
}

# flaskbox_unheld COMMAND [ARG...]
#   COMMAND with the stop signals unblocked again, as any program expects
#   them (a hook's `kill` of a child of its own would do nothing): env's
#   --default-signal unblocks them too (checked with coreutils 9.1, 9.7 and
#   9.10; 0.6 ms more than the command alone). A stop already pending for
#   it is taken at once, and ends it.
flaskbox_unheld() {
	flaskbox_unheld_argv "$@"
	env --default-signal=TERM,INT,QUIT "${FLASKBOX_UNHELD[@]}"
}

# flaskbox_unheld_argv COMMAND [ARG...]
#   FLASKBOX_UNHELD: the arguments for env that run COMMAND. env would take
#   a first word with a '=' in it (a hook named so, `docker run IMAGE A=B`)
#   for a variable to set: such a one goes through sh's exec instead.
flaskbox_unheld_argv() {
	FLASKBOX_UNHELD=("$@")
	# shellcheck disable=SC2016 # sh expands them
	[[ "$1" != *=* ]] || FLASKBOX_UNHELD=(sh -c 'exec "$@"' sh "$@")
}

# Run (not sourced): TERM ends a start, HUP does not.
[ "${BASH_SOURCE[0]}" != "$0" ] || flaskbox_early_signals

# $FLASKBOX_LIB and $FLASKBOX_USER come from the Dockerfile's ENV.
# shellcheck source=lib/common.sh
. "$FLASKBOX_LIB/common.sh"
# shellcheck source=lib/install-on-start.sh
. "$FLASKBOX_LIB/install-on-start.sh"
# shellcheck source=lib/hooks.sh
. "$FLASKBOX_LIB/hooks.sh"

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
		Settings are environment variables (see the README); their defaults:
	EOF
	python3 -I -m flaskbox settings
}

# flaskbox_usage_error MESSAGE...
#   Bad command line: say what is wrong, show usage, exit 2.
flaskbox_usage_error() {
	flaskbox_error "$*"
	flaskbox_usage >&2
	exit 2
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
		*)
			if [ "$mode_source" = APP_MODE ]; then
				flaskbox_usage_error "APP_MODE='$FLASKBOX_MODE' is not a mode: expected production or debug"
			fi
			flaskbox_usage_error "-d '$FLASKBOX_MODE' is not a mode: expected production or debug"
			;;
	esac
}

# flaskbox_file_vars
#   VAR_FILE=/path gives VAR the file's contents, for every variable (a
#   secret mounted as a file: a docker secret, a Kubernetes Secret volume),
#   as the official postgres image does. First of all, in every mode and as
#   root too, so that a file only root may read is read before stepping
#   down. VAR and VAR_FILE both set, or a file that cannot be read, exits 2
#   naming it (flaskbox/start/file_vars.py).
flaskbox_file_vars() {
	local name
	for name in $(compgen -e); do
		[[ "$name" == ?*_FILE ]] || continue
		flaskbox_assign file-vars
		return 0
	done
}

# flaskbox_env_files
#   /app/.env and /app/.flaskenv, read as `flask run` reads them when
#   python-dotenv is installed (flaskbox/start/env_files.py): what -e sets wins.
flaskbox_env_files() {
	[ -f /app/.env ] || [ -f /app/.flaskenv ] || return 0
	flaskbox_assign env-files
}

# flaskbox_step_down ARG...
#   Servers never run as root. Started as root (--user 0, or an image built
#   FROM this one that left USER root), re-run this script as the image's
#   user, the way the official postgres image steps down with gosu. Debug
#   mode too, though --user 0:0 may look like a request for root: its
#   debugger runs any code it is sent, and compose.yaml's dev service starts
#   as root only to install packages. The user is in group 0, so a checkout
#   owned by root is writable where its group may write (chmod g+w).
flaskbox_step_down() {
	[ "$(id -u)" = 0 ] || return 0
	# nginx reopens /dev/stdout for its access log; the pipe docker gave
	# root is mode 600, so hand it to the user that will write to it.
	chown "$FLASKBOX_USER" /proc/self/fd/1 /proc/self/fd/2 2>/dev/null || true
	# Said once the log is set up (flaskbox_json_logs), as the image's user.
	FLASKBOX_STEPPED_DOWN=1 exec setpriv --reuid="${FLASKBOX_USER%:*}" --regid="${FLASKBOX_USER#*:}" \
		--clear-groups -- "$0" "$@"
}

# flaskbox_stepped_down
#   Said after the step-down, once the log is set up (LOG_FORMAT=json).
flaskbox_stepped_down() {
	flaskbox_log "started as root: continuing as $FLASKBOX_USER (servers never run as root, debug mode" \
		"included; in group 0, they may write root's files that are group-writable)"
}

# flaskbox_check MODE
#   Before the hooks: every setting's default filled in and every value
#   checked by the settings table (flaskbox/settings/), exit 2 with a
#   message naming a bad one. Sets the four values the steps below use
#   (RUNTIME_DIR, APP_MODULE, PRE_START_PATH, INSTALL_ON_START), unexported;
#   the servers read the record that flaskbox_prepare writes.
flaskbox_check() {
	flaskbox_assign check "$1"
	# Debug mode writes no __pycache__ into the bind-mounted /app, hooks included.
	[ "$1" != debug ] || export PYTHONDONTWRITEBYTECODE=1
}

# flaskbox_writable_paths MODE
#   WRITABLE_PATHS' targets made on the instance volume, before the hooks
#   (a migration hook imports the app, which may write there at import).
flaskbox_writable_paths() {
	[ -n "${WRITABLE_PATHS:-}" ] || return 0
	python3 -I -m flaskbox writable "$1"
}

# flaskbox_prepare MODE
#   Once, after the hooks (a *.envsh hook may change settings): the settings
#   resolved into $RUNTIME_DIR/settings.json, the record every later reader
#   loads (flaskbox/record.py). In production, the configs rendered from it
#   and the certificate put in use, then judged by `nginx -t` (with the
#   user's nginx.d rules) before the app is imported, so a bad rule fails in
#   a second, not after a slow import. In debug mode, the warning.
flaskbox_prepare() {
	python3 -I -m flaskbox prepare "$1" || exit "$?"
	[ "$1" = production ] || return 0
	if ! nginx -t -q -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf"; then
		flaskbox_error "nginx rejected its configuration (message above); check /app/nginx.d/"
		exit 2
	fi
}

# flaskbox_start_debug
#   exec the Flask dev server (flaskbox/debug/server.py) under tini: reloader on,
#   interactive debugger on, its PIN in the log.
flaskbox_start_debug() {
	export FLASK_DEBUG=1
	# Ignored (inherited across the exec) until the dev server takes SIGHUP
	# over (flaskbox/debug/server.py, on_hangup): a HUP in between changes nothing.
	trap '' HUP
	cd /app || exit 1
	flaskbox_exec python -m flaskbox.debug.server
}

# flaskbox_start_production
#   exec the arbiter (flaskbox/arbiter/): PID 1 from here on, which starts
#   uWSGI and nginx and supervises them: a stop signal stops them in order,
#   SIGHUP reloads, either one dying takes the container down (non-zero) so
#   that a restart policy or orchestrator replaces it. It takes over the
#   JSON log relay this shell started (LOG_FORMAT=json).
flaskbox_start_production() {
	local relay=()
	if [ -n "${FLASKBOX_JSON_LOGS_PID:-}" ]; then
		relay=(--log-relay "$FLASKBOX_JSON_LOGS_PID" "$FLASKBOX_JSON_LOGS_FD" "$FLASKBOX_STDERR_FD")
	fi
	# The exec resets this shell's traps, and PID 1 drops a signal it has
	# no handler for: a stop during Python's start (0.1 s on a loaded
	# machine) would be lost, and Docker's SIGKILL end the container.
	# Blocked (env, coreutils 8.31+), it waits, pending, for the arbiter's
	# handlers, which unblock it (flaskbox/arbiter/system.py); so does one
	# that came after flaskbox_held_stop's last look. HUP too, blocked only
	# from here: one in Python's start is not lost, and reloads once serving.
	exec env --block-signal=TERM,INT,QUIT,HUP python3 -I -m flaskbox.arbiter "${relay[@]}"
}

# flaskbox_exec COMMAND [ARG...]
#   exec COMMAND, the stop signals unheld (flaskbox_unheld); as PID 1,
#   under tini, which forwards it the signals docker sends (a program that
#   is PID 1 ignores SIGTERM unless it handles it) and reaps the orphans it
#   leaves.
flaskbox_exec() {
	# tini gives its child the mask it came with: unheld after it, so that
	# a stop it forwards meanwhile is still taken (and ends the command).
	flaskbox_unheld_argv "$@"
	[ "$$" != 1 ] || exec tini -- env --default-signal=TERM,INT,QUIT "${FLASKBOX_UNHELD[@]}"
	exec env --default-signal=TERM,INT,QUIT "${FLASKBOX_UNHELD[@]}"
}

# flaskbox_exec_command COMMAND [ARG...]
#   Any other command runs as it is, with FLASK_APP naming the app the
#   servers would serve, so `docker run IMAGE flask db upgrade` acts on it,
#   and WRITABLE_PATHS ready on a volume the servers never saw yet (not as
#   root: what root made there, the serving user could not write).
flaskbox_exec_command() {
	if [ -z "${FLASK_APP:-}" ]; then
		FLASK_APP="$(python3 -I -m flaskbox app-module 2>/dev/null)" || true
		[ -z "$FLASK_APP" ] || export FLASK_APP
	fi
	if [ -n "${WRITABLE_PATHS:-}" ] && [ "$(id -u)" != 0 ]; then
		python3 -I -m flaskbox writable "${APP_MODE:-production}" || true
	fi
	# As for a hook: a Python that ends on an uncaught exception names the
	# writes next to the app's code that were refused, and the fix
	# (`flask db upgrade` without WRITABLE_PATHS: only SQLite's "unable to
	# open database file" before; flaskbox/userapp/hook_writes.py).
	FLASKBOX_HOOK_WRITES=1 flaskbox_exec "$@"
}

# flaskbox_share_with_group
#   umask 002 for everything this start runs (hooks, the servers, the app, a
#   one-off command): the image's user and any uid OpenShift picks are all
#   in group 0, so what one of them writes another may write (SQLite's
#   files too: flaskbox/userapp/sqlite_files.py). /app stays root's and read-only.
flaskbox_share_with_group() {
	umask 002
}

# flaskbox_name_the_user
#   A uid without a passwd entry (OpenShift's, or --user "$(id -u):$(id -g)"
#   as docs/develop.md says) has no name, and getpass.getuser() raises for
#   it (Werkzeug's debugger before 3.1 reads it for its PIN, on Python 3.13
#   and later: debug mode ended at its start). USER, which getuser() reads
#   first, names it by its number, unless one of the names it reads is set.
flaskbox_name_the_user() {
	if [ -z "${LOGNAME:-}${USER:-}${LNAME:-}${USERNAME:-}" ] && ! id -un >/dev/null 2>&1; then
		USER="$(id -u)"
		export USER
	fi
}

# main ARG...
#   Options (or nothing) start a server; any other command is exec'd.
main() {
	# (the stop signals: held since env, or flaskbox_early_signals's traps;
	# a held one ends the start at the next flaskbox_held_stop)
	flaskbox_held_stop                    # held through bash's start (and the step down's)
	flaskbox_file_vars                    # VAR_FILE=/path: VAR from the file (exit 2)
	flaskbox_env_files                    # /app/.env and .flaskenv, as flask run reads them
	# /app importable from anywhere (hooks, alembic, scripts), as in
	# tiangolo's image. flaskbox's own Python runs isolated (-I) from it.
	export PYTHONPATH="/app${PYTHONPATH:+:$PYTHONPATH}"
	flaskbox_share_with_group             # umask 002: group 0 may write what we write
	flaskbox_name_the_user                # USER for a uid without a passwd entry
	if [ "$#" -gt 0 ] && [[ "$1" != -* ]]; then
		flaskbox_exec_command "$@"
	fi
	flaskbox_parse_args "$@"              # FLASKBOX_MODE, from -d or APP_MODE
	flaskbox_install_os_packages          # as root only: INSTALL_ON_START's apt part
	flaskbox_step_down "$@"               # never serve as root
	[ "$FLASKBOX_MODE" = debug ] || flaskbox_json_logs  # LOG_FORMAT=json: stderr as JSON too
	[ -z "${FLASKBOX_STEPPED_DOWN:-}" ] || flaskbox_stepped_down
	flaskbox_check "$FLASKBOX_MODE"       # defaults and checks (exit 2)
	flaskbox_held_stop
	flaskbox_install_on_start             # INSTALL_ON_START's pip part
	flaskbox_writable_paths "$FLASKBOX_MODE"  # WRITABLE_PATHS on the volume
	flaskbox_held_stop
	flaskbox_run_hooks                    # /docker-entrypoint.d, PRE_START_PATH (each one held_stop)
	flaskbox_prepare "$FLASKBOX_MODE"     # once, after the hooks: the record, the configs
	flaskbox_held_stop
	if [ "$FLASKBOX_MODE" = debug ]; then
		flaskbox_start_debug              # exec the dev server
	fi
	flaskbox_start_production             # exec the arbiter: uWSGI and nginx, supervised
}

# Sourced (by a test, or a hook of yours), only the functions are defined.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
