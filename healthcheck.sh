#!/usr/bin/env bash
# Docker HEALTHCHECK for flaskbox: a liveness check, which never fails for
# being busy. lib/flaskbox/sidecars/health.py says what it checks in each mode.
set -Eeuo pipefail

# How long the quick probe waits for an answer before the full check takes
# over (its own probe waits 2 s; Docker's timeout is 3 s).
QUICK_SECONDS=0.5

# The usual case, production's GET /-/healthy answering 200, read by bash:
# Python's start cost every check some 40 ms of CPU, every 10 s, beside the
# app (docs/BENCHMARKS.md, "The health check's own cost"). No port file
# (debug mode, or a start not yet rendered), no answer in QUICK_SECONDS, or
# any other answer: the full check, which says why.
answers_200() {
	local port
	# RUNTIME_DIR's default is layout.Runtime.DEFAULT (tests/test_settings_defaults.py).
	read -r port <"${RUNTIME_DIR:-/tmp/flaskbox}/health-port" 2>/dev/null || return 1
	[[ $port =~ ^[0-9]+$ ]] || return 1
	# timeout bounds the connect too: a full listen queue drops the SYN.
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout "$QUICK_SECONDS" bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf "GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&3
		read -r status <&3
		[[ $status == "HTTP/1."[01]" 200 "* ]]' quick-probe "$port" 2>/dev/null
}

answers_200 && exit 0
# flaskbox.sidecars.health itself, not `-m flaskbox health`: the command line's
# module imports what every other command needs (the settings table,
# discovery, rendering), some 15 ms more CPU in every check.
exec python3 -I -m flaskbox.sidecars.health
