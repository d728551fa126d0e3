#!/usr/bin/env bash
# Starts the tiangolo-configuration contender: uWSGI in the background,
# nginx in the foreground, on PORT. A benchmark contender, not a supervisor.
set -Eeuo pipefail
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
mkdir -p /tmp/tiangolo
sed "s/\${PORT}/${PORT:?}/" "$here/nginx.conf" > /tmp/tiangolo/nginx.conf
uwsgi --ini "$here/uwsgi.ini" &
exec nginx -c /tmp/tiangolo/nginx.conf
