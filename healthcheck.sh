#!/usr/bin/env bash
# Docker HEALTHCHECK for flaskbox: a liveness check, which never fails for
# being busy. lib/flaskbox/health.py says what it checks in each mode.
set -Eeuo pipefail
# flaskbox.health itself, not `-m flaskbox health`: the command line's
# module imports what every other command needs (the settings table,
# discovery, rendering), some 15 ms more CPU in every check, every 10 s.
exec python3 -I -m flaskbox.health
