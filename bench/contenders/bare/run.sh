#!/usr/bin/env bash
# Starts the bare pass (the CPU floor): uWSGI in the background, nginx in
# the foreground on PORT. BARE_PROTOCOL=uwsgi (uwsgi_pass, the default) or
# http (HTTP/1.1 over the unix socket, as flaskbox's hop speaks), or
# gunicorn (gunicorn's workers instead of uWSGI, behind the same nginx, as
# gunicorn's deployment docs set it up: BARE_GUNICORN_CLASS gthread, the
# default, or sync; BARE_PRELOAD=1 imports the app once, before the fork,
# as --preload does);
# BARE_PROCESSES and BARE_THREADS size the pool, BARE_TIMEOUT is gunicorn's
# --timeout (30, its default); BARE_LAZY_APPS=1 loads the app in each uWSGI
# worker and BARE_THUNDER_LOCK=1 serialises their accept() (lazy-apps and
# thunder-lock, as an app's own documented uWSGI sets them: DevStack's
# Keystone). A benchmark contender, not a supervisor.
set -Eeuo pipefail
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
mkdir -p /tmp/bare
export BARE_PROCESSES="${BARE_PROCESSES:-4}" BARE_THREADS="${BARE_THREADS:-1}"
case "${BARE_PROTOCOL:-uwsgi}" in
uwsgi)
	socket=(--socket /tmp/bare/uwsgi.sock)
	pass='include /etc/nginx/uwsgi_params; uwsgi_pass unix:/tmp/bare/uwsgi.sock;'
	;;
http)
	socket=(--http-socket /tmp/bare/uwsgi.sock)
	# shellcheck disable=SC2016 # $http_host is nginx's variable, for nginx.conf
	pass='proxy_http_version 1.1; proxy_set_header Connection close; proxy_set_header Host $http_host; proxy_pass http://unix:/tmp/bare/uwsgi.sock:;'
	;;
gunicorn)
	# shellcheck disable=SC2016 # $http_host is nginx's variable, for nginx.conf
	pass='proxy_http_version 1.1; proxy_set_header Connection close; proxy_set_header Host $http_host; proxy_pass http://unix:/tmp/bare/gunicorn.sock:;'
	;;
*)
	echo "run.sh: BARE_PROTOCOL is uwsgi, http or gunicorn, not ${BARE_PROTOCOL}" >&2
	exit 2
	;;
esac
sed -e "s/\${PORT}/${PORT:?}/" -e "s/\${WORKERS}/$(nproc)/" -e "s|\${PASS}|${pass}|" \
	"$here/nginx.conf" >/tmp/bare/nginx.conf
if [ "${BARE_PROTOCOL:-uwsgi}" = gunicorn ]; then
	preload=()
	[ "${BARE_PRELOAD:-0}" = 1 ] && preload=(--preload)
	gunicorn --chdir /app --worker-class "${BARE_GUNICORN_CLASS:-gthread}" --workers "$BARE_PROCESSES" \
		--threads "$BARE_THREADS" --timeout "${BARE_TIMEOUT:-30}" "${preload[@]}" \
		--bind unix:/tmp/bare/gunicorn.sock app:app &
else
	documented=()
	[ "${BARE_LAZY_APPS:-0}" = 1 ] && documented+=(--lazy-apps)
	[ "${BARE_THUNDER_LOCK:-0}" = 1 ] && documented+=(--thunder-lock)
	uwsgi --ini "$here/uwsgi.ini" "${socket[@]}" "${documented[@]}" &
fi
exec nginx -c /tmp/bare/nginx.conf
