#!/usr/bin/env bash
# The supervisor's state, in one place: every variable the jobs of
# lib/supervise/ share, what it holds, and its value at start
# (_state_init). The jobs read and set these and nothing else of each
# other's; what does not change is a constant here too. Sourced by
# lib/supervise.sh.
# shellcheck disable=SC2034 # the state is shared by the parts of lib/supervise/ (state.sh)

# How long nginx may go on answering when a server died: the container must
# be gone within 2 s (stop.sh, _prod_abort).
FLASKBOX_ABORT_DRAIN_MS=1000
# What _uwsgi_wait_ready returns when a serving process (nginx's master, the
# running uWSGI master) died while a reload's new code loaded.
FLASKBOX_RELOAD_ABANDONED=254
# Seconds between two "still loading" lines of a reload's slow import.
FLASKBOX_RELOAD_NOTE_EVERY=30
# An import past IMPORT_TIMEOUT, as GNU timeout says it.
FLASKBOX_TIMED_OUT=124

# _state_init
#   Every process slot empty, no reload under way, no generation retiring.
#   The settings the shell got from `python3 -m flaskbox resolve`
#   (RUNTIME_DIR, PORT, APP_MODULE, FLASKBOX_STOP_*, FLASKBOX_RELOAD_GRACE,
#   FLASKBOX_IMPORT_TIMEOUT, ...) are read as they are, never changed.
_state_init() {
	# The serving processes: nginx's master; the current generation's uWSGI
	# master and its number; a generation still starting (a reload's).
	FLASKBOX_NGINX_PID='' FLASKBOX_UWSGI_PID='' FLASKBOX_GENERATION=0 FLASKBOX_STARTING_PID=''
	# The helpers (helpers.sh); FLASKBOX_JSON_LOGS_PID is lib/common.sh's.
	FLASKBOX_METRICS_PID='' FLASKBOX_TLS_WATCH_PID=''
	# nginx's configuration as loaded: a reload compares (reload.sh).
	FLASKBOX_NGINX_DIGEST=''
	# A reload under way; another SIGHUP during it (run it again after);
	# one waiting for room under the pids limit (retire.sh starts it).
	FLASKBOX_RELOADING='' FLASKBOX_RELOAD_AGAIN='' FLASKBOX_RELOAD_WAITING=''
	# Retiring generations: the retiring subshell's pid -> its master's,
	# and -> the generation's number (retire.sh).
	declare -gA FLASKBOX_RETIRING=() FLASKBOX_RETIRING_GEN=()
	# What the last watch of a retiring generation counted (retire.sh).
	FLASKBOX_IDLE_LEFT=''
}
