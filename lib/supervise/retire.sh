#!/usr/bin/env bash
# A reload's old generation, retired in a subshell of its own: its event
# streams end cleanly, the rest it holds has RELOAD_GRACE to finish (watched
# from the kernel's tables: flaskbox/generations.py), then its master stops.
# The log says a request was cut only when one was. Sourced by
# lib/supervise.sh.

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
			flaskbox_error "reload: ${FLASKBOX_IDLE_LEFT:-some} request(s) of the old code still in flight after RELOAD_GRACE (${FLASKBOX_RELOAD_GRACE}s): the old code stops now, and what it still holds is cut"
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
