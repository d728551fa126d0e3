#!/usr/bin/env bash
# Processes as the supervisor sees them: alive or not (a zombie has ended),
# their children, a stop within a budget read from the clock, and how one
# ended. Nothing here knows nginx or uWSGI. Sourced by lib/supervise.sh.

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

# _gone_within PID MILLISECONDS
#   Returns once PID has ended (a zombie has), or MILLISECONDS later.
_gone_within() {
	local polls=$(($2 / 20))
	while _alive "$1" && [ "$polls" -gt 0 ]; do
		sleep 0.02
		polls=$((polls - 1))
	done
}

# _stop_process PID SIGNAL MILLISECONDS [AT_MILLISECONDS ACTION]
#   Sends SIGNAL, waits up to MILLISECONDS for the process to exit, then kills
#   it (SIGKILL) and returns 137. Otherwise returns the process's exit code.
#   ACTION, if given, is called once with PID and the milliseconds since
#   SIGNAL after AT_MILLISECONDS. Times are read from the clock, so a loaded
#   machine does not stretch the budget.
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
			# Dead once the kernel says so (a stopped process takes a moment):
			# a caller that is not its parent must not see it still run.
			_gone_within "$pid" 1000
			wait "$pid" 2>/dev/null || true
			return 137
		fi
		if [ -n "$action" ] && [ $((now - started)) -ge $((at * 1000)) ]; then
			"$action" "$pid" $(((now - started) / 1000))
			action=""
		fi
		_json_logs_keep_relaying
		sleep 0.02
	done
	wait "$pid" 2>/dev/null || status=$?
	return "$status"
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
