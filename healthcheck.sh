#!/usr/bin/env bash
# Docker HEALTHCHECK for flaskbox: a liveness check, which never fails for
# being busy. lib/flaskbox/health.py says what it checks in each mode.
set -Eeuo pipefail
exec python3 -I -m flaskbox health
