#!/usr/bin/env bash
# Drop-in hooks, as the official nginx image runs them: the executable *.sh
# and *.envsh files of /docker-entrypoint.d in version order, then
# PRE_START_PATH (/app/prestart.sh, tiangolo's). A failing hook stops a
# production start with its exit code; in debug mode, where broken code never
# stops the container, it runs again once a file it may depend on changes.
# Sourced by entry-point.sh, never run.

# The drop-in hook folder.
FLASKBOX_HOOK_DIR=/docker-entrypoint.d

# flaskbox_run_hooks
#   Drop-ins from FLASKBOX_HOOK_DIR in version order (sort -V), then
#   PRE_START_PATH (/app/prestart.sh) for users of other Flask images. Executable *.sh and
#   *.envsh files run; anything else is logged as ignored.
flaskbox_run_hooks() {
	local hook
	if [ -d "$FLASKBOX_HOOK_DIR" ]; then
		while IFS= read -r -d '' hook <&3; do
			case "$hook" in
				*.sh | *.envsh)
					if [ ! -x "$hook" ]; then
						flaskbox_log "ignoring $hook: not executable (chmod +x it to run it)"
					elif [[ "$hook" == *.envsh ]]; then
						_run_hook source "$hook"
					else
						_run_hook exec "$hook"
					fi
					;;
				*) flaskbox_log "ignoring $hook: not a *.sh or *.envsh file" ;;
			esac
		# -L: hooks mounted from a Kubernetes ConfigMap are symlinks.
		done 3< <(find -L "$FLASKBOX_HOOK_DIR" -mindepth 1 -maxdepth 1 -type f -print0 | sort -zV)
	fi
	if [ -f "$PRE_START_PATH" ]; then
		_run_hook bash "$PRE_START_PATH"
	fi
}

# _run_hook HOW FILE
#   Runs one hook, HOW being `source` (an *.envsh: it may export settings),
#   `exec` (an executable *.sh) or `bash` (PRE_START_PATH, executable or
#   not). Output goes to stderr: stdout carries only the access log. A
#   failure stops startup with the hook's exit code; in debug mode, where
#   broken code never stops the container, it is reported and the hook runs
#   again once a file it may depend on changes (_await_fix). Either way a
#   package requirements.txt asks for and the image lacks is named. The
#   executables run unheld (flaskbox_unheld); what a sourced *.envsh starts
#   inherits this shell's held stop signals (docs/configuration.md).
_run_hook() {
	local how="$1" hook="$2" status sources=''
	while :; do
		# A stop held while the last hook ran ends the start before this one.
		flaskbox_held_stop
		status=0
		[ "${FLASKBOX_MODE:-}" != debug ] || sources="$(_hook_sources sources)"
		_hook_crlf "$hook" || status=2
		[ "$status" -ne 0 ] || case "$how" in
			source)
				flaskbox_log "sourcing $hook"
				_source_hook "$hook" || status=$?
				;;
			exec)
				flaskbox_log "running $hook"
				# FLASKBOX_HOOK_WRITES: a failing hook's Python names refused
				# writes next to the app's code (flaskbox/userapp/hook_writes.py).
				FLASK_APP="${FLASK_APP:-$APP_MODULE}" FLASKBOX_HOOK_WRITES=1 flaskbox_unheld "$hook" >&2 || status=$?
				;;
			bash)
				flaskbox_log "running $hook"
				FLASK_APP="${FLASK_APP:-$APP_MODULE}" FLASKBOX_HOOK_WRITES=1 flaskbox_unheld bash "$hook" >&2 || status=$?
				;;
		esac
		[ "$status" -ne 0 ] || { flaskbox_held_stop; return 0; }
		if [ "${FLASKBOX_MODE:-}" != debug ]; then
			flaskbox_error "hook $hook failed with exit code $status; not starting"
			_hint_missing_packages
			exit "$status"
		fi
		flaskbox_error "hook $hook failed with exit code $status (its output is above)"
		# Before the wait: no save fixes a package the image lacks.
		_hint_missing_packages
		_await_fix "$hook" "$sources"
	done
}

# _hint_missing_packages
#   After a failed hook: the packages /app/requirements.txt asks for that are
#   not installed, with the advice the app's own import failure gives
#   (flaskbox/userapp/distributions.py); nothing when none is missing. A
#   migration imports the app, and fails as it would.
_hint_missing_packages() {
	python3 -I -m flaskbox.userapp.distributions "${INSTALL_ON_START:-0}" || true
}

# _hook_crlf FILE
#   False, saying so, when the hook has Windows line endings (CRLF): bash
#   would read each \r as part of a word, and say "cannot execute: required
#   file not found" (the #! line's) or "$'\r': command not found".
_hook_crlf() {
	# The first line: a Windows editor ends every line so, while a CR in a
	# heredoc's data is the script's own business.
	head -n 1 "$1" | grep -q $'\r$' || return 0
	flaskbox_error "hook $1 has Windows line endings (CRLF), which bash cannot run: convert it" \
		"(dos2unix $(basename "$1"), or your editor's \"LF\"; git config core.autocrlf input keeps them out)"
	return 1
}

# _source_hook FILE
#   Sources an *.envsh as a plain script would run (without our -e and -u),
#   with FLASK_APP naming the app, as the other hooks get it; unless the
#   hook chose another, FLASK_APP is gone again afterwards, so that the
#   settings are resolved from what the user and the hooks set, and nothing
#   else.
_source_hook() {
	local ours='' status=0
	if [ -z "${FLASK_APP:-}" ]; then
		ours="$APP_MODULE"
		export FLASK_APP="$ours"
	fi
	set +eu
	# shellcheck disable=SC1090 # user-supplied drop-in
	. "$1" >&2
	status=$?
	set -eu
	if [ -n "$ours" ] && [ "${FLASK_APP:-}" = "$ours" ]; then
		unset FLASK_APP
	fi
	return "$status"
}

# _hook_sources sources | await-change STATE
#   The state of the files a hook may depend on (the app in /app, the hooks),
#   or wait until it differs from STATE (flaskbox/debug/changes.py).
_hook_sources() {
	local command="$1"
	shift
	python3 -I -m flaskbox "$command" "$@" /app "$FLASKBOX_HOOK_DIR" "$PRE_START_PATH"
}

# _await_fix HOOK STATE
#   Debug mode, after HOOK failed: wait for a save under /app or in the
#   hooks (any change since STATE, taken before the hook ran), so that the
#   caller runs it again. docker stop or Ctrl-C meanwhile ends the container
#   at once, with 0. The watcher runs in the background and says its exit
#   code on a pipe this shell reads with a timeout: a held stop is looked
#   for (flaskbox_held_stop's way) twice a second, an unheld one's trap runs
#   without waiting for the watcher.
_await_fix() {
	local hook="$1" state="$2" watch watcher status='' read_status
	flaskbox_log "debug mode: waiting for a change in /app or in the hooks, then running $hook again" \
		"(docker stop to give up)"
	exec {watch}< <(
		code=0
		_hook_sources await-change "$state" || code=$?
		printf '%s\n' "$code"
	)
	watcher=$!
	# shellcheck disable=SC2064 # the watcher's pid, now
	trap "kill $watcher 2>/dev/null; exit 0" TERM INT
	while :; do
		read_status=0
		IFS= read -r -t 0.5 -u "$watch" status || read_status=$?
		# Over 128: the timeout (or a SIGHUP, its trap logs it); else the code, or the end.
		[ "$read_status" -gt 128 ] || break
		flaskbox_held
		# The watcher holds the stop signals too: PID 1's end ends it.
		[ -z "$FLASKBOX_HELD" ] || { kill "$watcher" 2>/dev/null; exit 0; }
	done
	exec {watch}<&-
	flaskbox_early_signals
	if [ "${status:-1}" -ne 0 ]; then
		flaskbox_error "could not watch /app for a fix (exit code ${status:-1}); not starting"
		exit 1
	fi
	flaskbox_log "a change under /app or in the hooks: running $hook again"
}
