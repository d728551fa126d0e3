#!/usr/bin/env bash
# Debug mode's start: the warning nobody can miss (who can reach the
# debugger, on the network the container has), then the dev server
# (flaskbox/debug.py) exec'd under tini. Sourced by entry-point.sh, never run.

# flaskbox_start_debug
#   exec the Flask dev server (flaskbox/debug.py): reloader on, interactive
#   debugger on, its PIN in the log, and a warning nobody can miss.
flaskbox_start_debug() {
	flaskbox_debug_warning >&2
	export FLASK_DEBUG=1
	# Ignored (inherited across the exec) until the dev server takes SIGHUP
	# over (flaskbox/debug.py, on_hangup): a HUP in between changes nothing.
	trap '' HUP
	cd /app || exit 1
	# A fresh start: an APP_MODULE that names no app exits 2, as in
	# production (flaskbox/debug.py); after an edit it is shown instead.
	rm -f "$RUNTIME_DIR/debug.loaded" "$RUNTIME_DIR/debug.app"
	flaskbox_exec python -m flaskbox.debug
}

# flaskbox_debug_warning
#   Who can reach the debugger, and how to keep it to this machine, for the
#   network the container has (DEBUG_HOST, settings/defaults.py).
flaskbox_debug_warning() {
	local reach=()
	if [ "$FLASKBOX_HOST_NETWORK" = 1 ] && [ "$DEBUG_HOST" = 127.0.0.1 ]; then
		reach=("It listens on 127.0.0.1:$PORT only (the host's network; DEBUG_HOST):"
			"http://127.0.0.1:$PORT/ on this machine. DEBUG_HOST=0.0.0.0 would open it"
			"to your whole network.")
	elif [ "$FLASKBOX_HOST_NETWORK" = 1 ]; then
		reach=("It listens on $DEBUG_HOST:$PORT of the host's network (DEBUG_HOST); 0.0.0.0 is"
			"EVERY interface of this machine, your whole network. Unset DEBUG_HOST to"
			"keep it on 127.0.0.1.")
	else
		reach=("-p $PORT:$PORT publishes the port on EVERY interface of the host, to"
			"your whole network. Publish it on this machine only:"
			"    docker run -p 127.0.0.1:$PORT:$PORT ...")
	fi
	printf 'flaskbox: %s\n' \
		"************************************************************************" \
		"WARNING: debug mode. The Werkzeug debugger runs any Python code typed" \
		"into its browser console: whoever reaches port $PORT and has the" \
		"\"Debugger PIN\" printed below can run code in this container." \
		"${reach[@]}" \
		"Never use debug mode in production." \
		"************************************************************************"
}
