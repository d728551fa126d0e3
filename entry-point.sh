#!/usr/bin/env bash
# flaskbox entry point: picks the mode and hands off to the server.
#
#   entry-point.sh                 production: nginx -> uWSGI -> /app
#   entry-point.sh -d debug        Flask dev server with auto-reload
#   entry-point.sh -d production   same as no arguments
#   entry-point.sh -h              usage
#   entry-point.sh CMD [ARG...]    anything else is exec'd as it is
#
# main() reads like a table of contents: settings and their validation,
# hooks, runtime files, then the hand-off to the servers.
# When sourced (healthcheck.sh does), only the functions are defined.
set -Eeuo pipefail

# Where the image keeps its config templates, the drop-in hook folder, and
# the uid:gid that serves (the Dockerfile's USER).
FLASKBOX_CONF_DIR=/etc/flaskbox
FLASKBOX_HOOK_DIR=/docker-entrypoint.d
FLASKBOX_USER=10001:10001
# RUNTIME_DIR's default, shared with healthcheck.sh.
FLASKBOX_RUNTIME_DIR=/tmp/flaskbox
# Seconds a uWSGI worker may still run once a stop reaches uWSGI (after
# nginx's drain of at most 5 s); app.ini's worker-reload-mercy says the same.
FLASKBOX_UWSGI_MERCY=2
# Debug mode: the dev server, the files INSTALL_ON_START=1 installs from, and
# the record of the OS packages installed (kept beside what apt changed).
FLASKBOX_DEBUG_SERVER=/usr/local/lib/flaskbox/debug_server.py
FLASKBOX_REQUIREMENTS=/app/requirements.txt
FLASKBOX_REQUIREMENTS_OS=/app/requirements_os.txt
FLASKBOX_OS_MARKER=/var/lib/flaskbox/requirements_os.sha256

# flaskbox_log MESSAGE...
#   Info line on stderr (stdout carries only the access log, so LOG_FORMAT=json
#   stays parseable). ENTRYPOINT_QUIET_LOGS=1 silences it.
flaskbox_log() {
	[ "${ENTRYPOINT_QUIET_LOGS:-0}" = 1 ] && return 0
	printf 'flaskbox: %s\n' "$*" >&2
}

# flaskbox_error MESSAGE...
#   Error line on stderr. Errors are never silenced.
flaskbox_error() {
	printf 'flaskbox: error: %s\n' "$*" >&2
}

# flaskbox_usage
#   The usage text, on stdout; callers redirect it to stderr for errors.
flaskbox_usage() {
	cat <<-'EOF'
		Usage: entry-point.sh [-d production|debug] [-h]
		       entry-point.sh COMMAND [ARG...]

		  (no arguments)   production: nginx on $PORT (80) -> uWSGI -> /app
		  -d production    the same
		  -d debug         Flask dev server on $PORT (5000) with auto-reload
		  -h               show this help
		  COMMAND          run COMMAND instead, e.g. bash, flask shell

		APP_MODE=production|debug is the environment alternative to -d.
		Settings (PORT, APP_MODULE, MAX_BODY_SIZE, REQUEST_TIMEOUT, ...) are
		environment variables; see the README.
	EOF
}

# flaskbox_usage_error MESSAGE...
#   Bad command line: say what is wrong, show usage, exit 2.
flaskbox_usage_error() {
	flaskbox_error "$*"
	flaskbox_usage >&2
	exit 2
}

# flaskbox_config_error MESSAGE...
#   Bad setting: say which and how to fix it, exit 2 before anything starts.
flaskbox_config_error() {
	flaskbox_error "$*"
	exit 2
}

# flaskbox_cpu_count
#   CPUs this container may use: the cgroup quota (v2 cpu.max, v1
#   cfs_quota_us) rounded up, capped by the CPUs it may run on (nproc).
flaskbox_cpu_count() {
	local cpus quota='' period=''
	# nproc honours OMP_NUM_THREADS, which says nothing about this container.
	cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)"
	if [ -r /sys/fs/cgroup/cpu.max ]; then
		read -r quota period </sys/fs/cgroup/cpu.max || true
	elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
		read -r quota </sys/fs/cgroup/cpu/cpu.cfs_quota_us || true
		read -r period </sys/fs/cgroup/cpu/cpu.cfs_period_us || true
	fi
	# "max" (v2) or -1 (v1) means no quota.
	if [[ "$quota" =~ ^[0-9]+$ && "$period" =~ ^[0-9]+$ ]] && [ "$quota" -gt 0 ] && [ "$period" -gt 0 ]; then
		local limit=$(((quota + period - 1) / period))
		[ "$limit" -lt "$cpus" ] && cpus="$limit"
	fi
	[ "$cpus" -ge 1 ] 2>/dev/null || cpus=1
	printf '%s\n' "$cpus"
}

# flaskbox_setup_env MODE
#   Every default lives here, once. PORT's default depends on MODE; worker
#   counts on the CPU quota.
flaskbox_setup_env() {
	local mode="$1"
	local default_port=80
	[ "$mode" = debug ] && default_port=5000
	# Counted once: setup runs again after the hooks.
	[ -n "${FLASKBOX_CPUS:-}" ] || FLASKBOX_CPUS="$(flaskbox_cpu_count)"
	: "${PORT:=$default_port}"
	: "${APP_MODULE:=app:app}"
	: "${MAX_BODY_SIZE:=10m}"
	: "${REQUEST_TIMEOUT:=30}"
	: "${STATIC_ENABLED:=1}"
	: "${STATIC_URL:=/static}"
	: "${STATIC_PATH:=/app/static}"
	# One uWSGI process per CPU, 2 threads each: while one thread waits on
	# I/O (database, HTTP calls), the other computes. Measured on 2 CPUs
	# (bench/): the same requests/s as 4 processes x 1 thread (6260 vs 6293)
	# for 52 MB less memory (106 vs 158 MB), as each process holds its own
	# copy of the app. At most 16 processes on a big host without a quota.
	# nginx needs one worker per CPU.
	local processes="$FLASKBOX_CPUS"
	[ "$processes" -le 16 ] || processes=16
	: "${UWSGI_PROCESSES:=$processes}"
	: "${UWSGI_THREADS:=2}"
	: "${NGINX_WORKER_PROCESSES:=$FLASKBOX_CPUS}"
	: "${UWSGI_INI:=}"
	: "${LOG_FORMAT:=text}"
	: "${TRUSTED_PROXIES:=}"
	: "${ENTRYPOINT_QUIET_LOGS:=0}"
	: "${RUNTIME_DIR:=$FLASKBOX_RUNTIME_DIR}"
	: "${DEBUG_RELOADER:=inotify}"
	: "${INSTALL_ON_START:=0}"
	# "/static/" means /static; a lone "/" is left for validation to reject.
	[ "${#STATIC_URL}" -le 1 ] || STATIC_URL="${STATIC_URL%/}"
	[ "${#STATIC_PATH}" -le 1 ] || STATIC_PATH="${STATIC_PATH%/}"
	export PORT APP_MODULE MAX_BODY_SIZE REQUEST_TIMEOUT STATIC_ENABLED \
		STATIC_URL STATIC_PATH UWSGI_PROCESSES UWSGI_THREADS NGINX_WORKER_PROCESSES \
		LOG_FORMAT TRUSTED_PROXIES ENTRYPOINT_QUIET_LOGS RUNTIME_DIR DEBUG_RELOADER INSTALL_ON_START
	# Debug mode writes no __pycache__ into the bind-mounted /app, hooks included.
	[ "$mode" != debug ] || export PYTHONDONTWRITEBYTECODE=1
	# An empty UWSGI_INI would reach uWSGI as `--ini ''`.
	if [ -n "$UWSGI_INI" ]; then export UWSGI_INI; else unset UWSGI_INI; fi
}

# _require VAR REGEX DESCRIPTION
#   Exit 2 naming VAR and the accepted form unless its value matches REGEX.
_require() {
	local name="$1" regex="$2" form="$3"
	local value="${!name:-}"
	if ! [[ "$value" =~ $regex ]]; then
		flaskbox_config_error "$name='$value' is not valid: expected $form"
	fi
}

# _require_range VAR MIN MAX DESCRIPTION
#   Exit 2 unless VAR is a whole number from MIN to MAX.
_require_range() {
	local name="$1" min="$2" max="$3" form="$4"
	_require "$name" '^[0-9]{1,6}$' "$form"
	local value=$((10#${!name}))
	if [ "$value" -lt "$min" ] || [ "$value" -gt "$max" ]; then
		flaskbox_config_error "$name='${!name}' is not valid: expected $form"
	fi
}

# _require_bindable_port
#   A non-root process may bind a port below net.ipv4.ip_unprivileged_port_start
#   only where the runtime lowered it (Docker does for each container since
#   20.10; --network host and some Kubernetes runtimes do not). Say so plainly
#   instead of letting nginx fail with "Permission denied".
_require_bindable_port() {
	local start
	[ "$PORT" -lt 1024 ] || return 0
	read -r start </proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || return 0
	if [ "$PORT" -lt "$start" ]; then
		flaskbox_config_error "PORT=$PORT is below $start, the lowest port a non-root process may bind here" \
			"(net.ipv4.ip_unprivileged_port_start): set PORT=8080 and publish it (-p 8091:8080)," \
			"or give the container --sysctl net.ipv4.ip_unprivileged_port_start=0"
	fi
}

# _require_debug_settings
#   INSTALL_ON_START is for debug mode only, and the debugger keeps its PIN.
_require_debug_settings() {
	local mode="${FLASKBOX_MODE:-production}"
	if [ "$INSTALL_ON_START" = 1 ] && [ "$mode" != debug ]; then
		flaskbox_config_error "INSTALL_ON_START=1 works in debug mode only: production serves what the image" \
			"was built with, so add the packages to requirements.txt (or requirements_os.txt) and rebuild"
	fi
	if [ "$mode" = debug ] && [ "${WERKZEUG_DEBUG_PIN:-}" = off ]; then
		flaskbox_config_error "WERKZEUG_DEBUG_PIN=off would let anyone who reaches port $PORT run code" \
			"without a PIN: unset it, or choose a PIN of your own, e.g. WERKZEUG_DEBUG_PIN=314-159-265"
	fi
}

# flaskbox_validate_env
#   Check every setting before anything starts.
flaskbox_validate_env() {
	_require_range PORT 1 65535 'a port number from 1 to 65535'
	_require APP_MODULE '^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*)?$' \
		'module or module:callable, e.g. app:app or mypkg.wsgi:application'
	_require MAX_BODY_SIZE '^[0-9]+[kKmMgG]?$' 'a size such as 512k, 10m or 1g (0 disables the limit)'
	_require_range REQUEST_TIMEOUT 1 86400 'a whole number of seconds from 1 to 86400'
	_require STATIC_ENABLED '^[01]$' '1 (nginx serves STATIC_URL) or 0 (the app does)'
	_require STATIC_URL '^(/[A-Za-z0-9._~-]+)+$' 'a URL path below / such as /static'
	_require STATIC_PATH '^(/[A-Za-z0-9._~-]+)+$' 'an absolute directory such as /app/static'
	_require_range UWSGI_PROCESSES 1 1024 'a whole number of processes from 1 to 1024'
	_require_range UWSGI_THREADS 1 1024 'a whole number of threads per process from 1 to 1024'
	_require_range NGINX_WORKER_PROCESSES 1 1024 'a whole number of nginx workers from 1 to 1024'
	_require LOG_FORMAT '^(text|json)$' 'text or json'
	_require TRUSTED_PROXIES '^[0-9A-Fa-f.:/, ]*$' \
		'IP addresses or CIDRs separated by spaces or commas, e.g. 10.0.0.0/8,192.168.0.0/16'
	_require ENTRYPOINT_QUIET_LOGS '^[01]$' '1 (quiet) or 0'
	_require DEBUG_RELOADER '^(inotify|poll)$' 'inotify (file events) or poll (a scan every 0.5 s, for Docker Desktop)'
	_require INSTALL_ON_START '^[01]$' '1 (install /app/requirements.txt and requirements_os.txt at start) or 0'
	_require_debug_settings
	_require_bindable_port
	if [ -n "${UWSGI_INI:-}" ] && [ ! -r "$UWSGI_INI" ]; then
		flaskbox_config_error "UWSGI_INI='$UWSGI_INI' is not a readable file: mount your ini there or unset UWSGI_INI"
	fi
	local var
	for var in $(compgen -e); do
		if [[ "$var" == UWSGI_* && "${!var}" == *$'\n'* ]]; then
			flaskbox_config_error "$var holds a line break: uWSGI options are one line"
		fi
	done
}

# flaskbox_step_down ARG...
#   Servers never run as root. Started as root (--user 0, or an image built
#   FROM this one that left USER root), re-run this script as the image's
#   user, the way the official postgres image steps down with gosu.
flaskbox_step_down() {
	[ "$(id -u)" = 0 ] || return 0
	flaskbox_log "started as root: continuing as $FLASKBOX_USER"
	# nginx reopens /dev/stdout for its access log; the pipe docker gave
	# root is mode 600, so hand it to the user that will write to it.
	chown "$FLASKBOX_USER" /proc/self/fd/1 /proc/self/fd/2 2>/dev/null || true
	exec setpriv --reuid="${FLASKBOX_USER%:*}" --regid="${FLASKBOX_USER#*:}" --clear-groups -- "$0" "$@"
}

# flaskbox_configure MODE
#   Defaults, then validation: run before the hooks and again after them,
#   because a *.envsh hook may change settings.
flaskbox_configure() {
	flaskbox_setup_env "$1"
	flaskbox_validate_env
}

# flaskbox_parse_args ARG...
#   Sets FLASKBOX_MODE from -d or APP_MODE, handles -h, rejects anything
#   unknown. Only called when the first argument is an option (or absent).
flaskbox_parse_args() {
	FLASKBOX_MODE="${APP_MODE:-production}"
	local mode_source=APP_MODE
	local opt
	OPTIND=1
	while getopts ':hd:' opt; do
		case "$opt" in
			h) flaskbox_usage; exit 0 ;;
			d) FLASKBOX_MODE="$OPTARG"; mode_source='-d' ;;
			:) flaskbox_usage_error "option -$OPTARG needs a value: production or debug" ;;
			*) flaskbox_usage_error "unknown option: -$OPTARG" ;;
		esac
	done
	shift $((OPTIND - 1))
	[ "$#" -eq 0 ] || flaskbox_usage_error "unexpected argument: $1"
	case "$FLASKBOX_MODE" in
		production | debug) ;;
		*)
			if [ "$mode_source" = APP_MODE ]; then
				flaskbox_usage_error "APP_MODE='$FLASKBOX_MODE' is not a mode: expected production or debug"
			fi
			flaskbox_usage_error "-d '$FLASKBOX_MODE' is not a mode: expected production or debug"
			;;
	esac
}

# _run_hook HOW FILE
#   Runs one hook, HOW being `source` (an *.envsh: it may export settings),
#   `exec` (an executable *.sh) or `bash` (/app/prestart.sh, executable or
#   not). Output goes to stderr: stdout carries only the access log. A
#   failure stops startup with the hook's exit code.
_run_hook() {
	local how="$1" hook="$2" status=0
	case "$how" in
		source)
			flaskbox_log "sourcing $hook"
			# Sourced as a plain script would run: without our -e and -u.
			set +eu
			# shellcheck disable=SC1090 # user-supplied drop-in
			. "$hook" >&2
			status=$?
			set -eu
			;;
		exec)
			flaskbox_log "running $hook"
			"$hook" >&2 || status=$?
			;;
		bash)
			flaskbox_log "running $hook"
			bash "$hook" >&2 || status=$?
			;;
	esac
	if [ "$status" -ne 0 ]; then
		flaskbox_error "hook $hook failed with exit code $status; not starting"
		exit "$status"
	fi
}

# flaskbox_run_hooks
#   Drop-ins from FLASKBOX_HOOK_DIR in version order (sort -V), then
#   /app/prestart.sh for users of other Flask images. Executable *.sh and
#   *.envsh files run; anything else is logged as ignored.
flaskbox_run_hooks() {
	local hook
	if [ -d "$FLASKBOX_HOOK_DIR" ]; then
		while IFS= read -r -d '' hook <&3; do
			case "$hook" in
				*.sh | *.envsh)
					if [ ! -x "$hook" ]; then
						flaskbox_log "ignoring $hook: not executable"
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
	if [ -f /app/prestart.sh ]; then
		_run_hook bash /app/prestart.sh
	fi
}

# _render TEMPLATE OUTPUT VAR...
#   envsubst restricted to the named variables, so nginx's own $uri, $host
#   and friends stay intact.
_render() {
	local template="$1" output="$2"
	shift 2
	# shellcheck disable=SC2016 # builds the literal list '${A} ${B} ...'
	envsubst "$(printf '${%s} ' "$@")" <"$template" >"$output"
}

# flaskbox_render_nginx
#   Renders nginx.conf and its two generated includes into RUNTIME_DIR, then
#   lets `nginx -t` judge the result, including the user's nginx.d rules.
flaskbox_render_nginx() {
	local out="$RUNTIME_DIR/nginx"
	# nginx waits a little longer than harakiri, so uWSGI answers first.
	export UPSTREAM_TIMEOUT=$((REQUEST_TIMEOUT + 5))
	_render "$FLASKBOX_CONF_DIR/nginx.conf" "$out/nginx.conf" \
		PORT RUNTIME_DIR MAX_BODY_SIZE UPSTREAM_TIMEOUT NGINX_WORKER_PROCESSES LOG_FORMAT
	if [ "$STATIC_ENABLED" = 1 ]; then
		_render "$FLASKBOX_CONF_DIR/nginx-static.conf" "$out/static.conf" STATIC_URL STATIC_PATH
	else
		echo '# STATIC_ENABLED=0: static URLs go to the app.' >"$out/static.conf"
	fi
	# One set_real_ip_from line per trusted proxy; none by default.
	{
		echo '# Generated from TRUSTED_PROXIES by entry-point.sh.'
		local proxy
		for proxy in ${TRUSTED_PROXIES//,/ }; do
			printf 'set_real_ip_from %s;\n' "$proxy"
		done
	} >"$out/real_ip.conf"
	if ! nginx -t -q -e stderr -c "$out/nginx.conf"; then
		flaskbox_config_error "nginx rejected its configuration (message above); check /app/nginx.d/ and TRUSTED_PROXIES"
	fi
}

# flaskbox_prepare_runtime MODE
#   Creates the writable runtime directory (the only place written) and,
#   in production, the nginx configuration.
flaskbox_prepare_runtime() {
	local mode="$1"
	if ! mkdir -p "$RUNTIME_DIR/nginx" 2>/dev/null || [ ! -w "$RUNTIME_DIR" ]; then
		flaskbox_error "RUNTIME_DIR '$RUNTIME_DIR' is not writable; on a read-only root add --tmpfs /tmp"
		exit 1
	fi
	printf '%s %s\n' "$mode" "$PORT" >"$RUNTIME_DIR/state"
	[ "$mode" = production ] || return 0
	flaskbox_render_nginx
	flaskbox_log "$FLASKBOX_CPUS CPU(s) available: uWSGI $UWSGI_PROCESSES processes x $UWSGI_THREADS threads, nginx $NGINX_WORKER_PROCESSES workers"
}

# flaskbox_uwsgi_ini
#   uWSGI reads UWSGI_* variables before its ini files, so app.ini would win
#   over them. Instead they are written, in uWSGI's own `option = value` form,
#   to an ini loaded after app.ini and UWSGI_INI, and removed from the
#   environment so uWSGI does not read them twice (list options would double).
#   Variables uWSGI sets for itself are left alone.
flaskbox_uwsgi_ini() {
	local ini="$RUNTIME_DIR/uwsgi-env.ini" var option somaxconn
	# app.ini asks for a backlog of 1024; kernels before 5.4 cap it at 128
	# (net.core.somaxconn), and uWSGI refuses to start above the cap.
	if [ -z "${UWSGI_LISTEN:-}" ] && read -r somaxconn </proc/sys/net/core/somaxconn 2>/dev/null &&
		[ "$somaxconn" -lt 1024 ]; then
		flaskbox_log "net.core.somaxconn is $somaxconn: uWSGI's listen backlog lowered to match"
		export UWSGI_LISTEN="$somaxconn"
	fi
	echo '[uwsgi]' >"$ini"
	for var in $(compgen -e); do
		case "$var" in
			UWSGI_INI | UWSGI_RELOADS | UWSGI_VASSALS_DIR | UWSGI_EMPEROR_* | UWSGI_BROODLORD_NUM | \
				UWSGI_JAIL_PID | UWSGI_ORIGINAL_PROC_NAME) continue ;;
			UWSGI_*) ;;
			*) continue ;;
		esac
		option="${var#UWSGI_}"
		option="${option,,}"
		printf '%s = %s\n' "${option//_/-}" "${!var}" >>"$ini"
		unset "$var"
	done
}

# _sha256 FILE
#   The checksum of FILE's content: what INSTALL_ON_START compares with the
#   last install, so that a restart with unchanged files installs nothing.
_sha256() {
	local sum
	sum="$(sha256sum <"$1")"
	printf '%s\n' "${sum%% *}"
}

# _missing_os_packages FILE
#   The packages a requirements_os.txt lists ('#' comments dropped, as the
#   Dockerfile reads it) that dpkg does not have installed.
_missing_os_packages() {
	local pkg packages=() missing=()
	# Every word of the file, across lines (read stops at the end: status 1).
	read -r -d '' -a packages < <(sed -e 's/#.*//' "$1") || true
	for pkg in "${packages[@]}"; do
		# shellcheck disable=SC2016 # ${Status} is dpkg-query's, not ours
		if [ "$(dpkg-query -W -f='${Status}' "${pkg%%=*}" 2>/dev/null)" != 'install ok installed' ]; then
			missing+=("$pkg")
		fi
	done
	printf '%s\n' "${missing[*]}"
}

# _os_requirements_changed
#   True when /app/requirements_os.txt exists and differs from what was last
#   installed in this container.
_os_requirements_changed() {
	[ -f "$FLASKBOX_REQUIREMENTS_OS" ] || return 1
	[ "$(cat "$FLASKBOX_OS_MARKER" 2>/dev/null)" != "$(_sha256 "$FLASKBOX_REQUIREMENTS_OS")" ]
}

# flaskbox_install_os_packages
#   INSTALL_ON_START=1 in debug mode, started as root: apt installs what
#   /app/requirements_os.txt lists, before the step down to the serving user.
#   Run as anyone else, it does nothing: flaskbox_install_on_start explains.
flaskbox_install_os_packages() {
	[ "$(id -u)" = 0 ] && [ "$FLASKBOX_MODE" = debug ] && [ "${INSTALL_ON_START:-0}" = 1 ] || return 0
	# Bad settings fail now, not after a slow install.
	flaskbox_configure debug
	if ! _os_requirements_changed; then
		[ ! -f "$FLASKBOX_REQUIREMENTS_OS" ] ||
			flaskbox_log "$FLASKBOX_REQUIREMENTS_OS unchanged since its last install: no apt"
		return 0
	fi
	local sum missing status=0
	sum="$(_sha256 "$FLASKBOX_REQUIREMENTS_OS")"
	missing="$(_missing_os_packages "$FLASKBOX_REQUIREMENTS_OS")"
	if [ -n "$missing" ]; then
		flaskbox_log "INSTALL_ON_START: installing OS packages from $FLASKBOX_REQUIREMENTS_OS: $missing"
		# shellcheck disable=SC2086 # one word per package
		{ apt-get update && apt-get install -y --no-install-recommends $missing; } >&2 || status=$?
		if [ "$status" -ne 0 ]; then
			flaskbox_error "apt could not install the packages in $FLASKBOX_REQUIREMENTS_OS" \
				"(exit code $status, apt's message is above); not starting"
			exit "$status"
		fi
	fi
	mkdir -p "${FLASKBOX_OS_MARKER%/*}"
	printf '%s\n' "$sum" >"$FLASKBOX_OS_MARKER"
}

# _require_os_packages
#   Not root: OS packages still to install stop the container, saying how
#   to get them.
_require_os_packages() {
	local missing
	_os_requirements_changed || return 0
	missing="$(_missing_os_packages "$FLASKBOX_REQUIREMENTS_OS")"
	[ -n "$missing" ] || return 0
	flaskbox_error "INSTALL_ON_START=1: $FLASKBOX_REQUIREMENTS_OS lists OS packages that are not installed ($missing)"
	cat >&2 <<-EOF
		flaskbox: Only root can install them, and this container runs as uid $(id -u). Either:
		flaskbox:   - add them to requirements_os.txt beside the Dockerfile and rebuild the image
		flaskbox:     (better: every container then starts with them, at once), or
		flaskbox:   - start the container as root (docker run --user root ..., compose: user: root);
		flaskbox:     the entry-point installs them, then serves as $FLASKBOX_USER.
	EOF
	exit 2
}

# _layered_venv DIR
#   A virtualenv in DIR whose packages come before the image's (/opt/venv,
#   added by a .pth file): pip skips what the image already has, and a
#   different version of one of the image's packages shadows it here
#   instead of pip trying to replace the root-owned original.
_layered_venv() {
	local venv="$1" base site
	[ ! -x "$venv/bin/python" ] || return 0
	if ! mkdir -p "$venv" 2>/dev/null || [ ! -w "$venv" ]; then
		flaskbox_error "INSTALL_ON_START=1 needs a writable RUNTIME_DIR ('$RUNTIME_DIR'); on a read-only root add --tmpfs /tmp:exec"
		exit 1
	fi
	python -m venv --without-pip "$venv"
	base="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	printf '%s\n' "$base" >"$site/flaskbox-image-venv.pth"
}

# _warn_if_noexec DIR
#   Compiled packages (.so files) cannot load from a noexec mount, and
#   Docker's --tmpfs is noexec unless told otherwise: say so now, rather
#   than let an import fail obscurely later. Pure-Python packages still work.
_warn_if_noexec() {
	local probe="$1/.exec-probe"
	printf '#!/bin/sh\n' >"$probe"
	chmod +x "$probe"
	if ! "$probe" 2>/dev/null; then
		printf 'flaskbox: warning: %s\n' "$1 is on a noexec mount: compiled packages installed there" \
			"will fail to import; on a read-only root use --tmpfs /tmp:exec" >&2
	fi
	rm -f "$probe"
}

# _install_python_requirements
#   pip installs /app/requirements.txt into the layered virtualenv in
#   RUNTIME_DIR, unless it is unchanged since the last install there; then
#   puts that virtualenv first for the hooks and the server.
_install_python_requirements() {
	local venv="$RUNTIME_DIR/venv" sum site status=0
	[ -f "$FLASKBOX_REQUIREMENTS" ] || return 0
	sum="$(_sha256 "$FLASKBOX_REQUIREMENTS")"
	if [ "$(cat "$venv/requirements.sha256" 2>/dev/null)" = "$sum" ]; then
		flaskbox_log "$FLASKBOX_REQUIREMENTS unchanged since its last install: no pip"
	else
		_layered_venv "$venv"
		_warn_if_noexec "$venv"
		flaskbox_log "INSTALL_ON_START: installing Python packages from $FLASKBOX_REQUIREMENTS"
		"$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
			-r "$FLASKBOX_REQUIREMENTS" >&2 || status=$?
		if [ "$status" -ne 0 ]; then
			flaskbox_error "pip could not install $FLASKBOX_REQUIREMENTS (exit code $status," \
				"pip's message is above); not starting"
			exit "$status"
		fi
		printf '%s\n' "$sum" >"$venv/requirements.sha256"
	fi
	site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	# PATH for the server and for new console scripts; PYTHONPATH for the
	# image's own scripts (flask, in a prestart hook), which run /opt/venv's python.
	export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

# flaskbox_install_on_start
#   INSTALL_ON_START=1 (debug mode only): before the hooks and the server,
#   checks that the OS packages are there and installs the Python ones.
#   A failure stops the container: nothing is served half-installed.
flaskbox_install_on_start() {
	[ "$INSTALL_ON_START" = 1 ] || return 0
	_require_os_packages
	_install_python_requirements
}

# flaskbox_start_debug
#   exec the Flask dev server (debug_server.py): reloader on, interactive
#   debugger on, its PIN in the log, and a warning nobody can miss.
flaskbox_start_debug() {
	cat >&2 <<-EOF
		flaskbox: ************************************************************************
		flaskbox: WARNING: debug mode. The Werkzeug debugger runs any Python code typed
		flaskbox: into its browser console: whoever reaches port $PORT and has the
		flaskbox: "Debugger PIN" printed below can run code in this container.
		flaskbox: -p $PORT:$PORT publishes the port on EVERY interface of the host, to
		flaskbox: your whole network. Publish it on this machine only:
		flaskbox:     docker run -p 127.0.0.1:$PORT:$PORT ...
		flaskbox: Never use debug mode in production.
		flaskbox: ************************************************************************
	EOF
	export FLASK_DEBUG=1
	cd /app
	exec python "$FLASKBOX_DEBUG_SERVER"
}

# _prod_wait_until_ready
#   nginx starts only once a uWSGI worker accepts requests (app.ini's
#   hook-accepting1-once creates uwsgi.ready), so no client waits on a slow
#   app import. Fails if uWSGI dies first, e.g. on a broken app.
_prod_wait_until_ready() {
	until [ -e "$RUNTIME_DIR/uwsgi.ready" ]; do
		if ! kill -0 "$FLASKBOX_UWSGI_PID" 2>/dev/null; then
			local status=0
			wait "$FLASKBOX_UWSGI_PID" || status=$?
			if [ "$status" -eq 22 ]; then
				# need-app's exit code: the import failed (traceback above) or
				# the module has no such callable.
				flaskbox_error "could not load APP_MODULE='$APP_MODULE': see the traceback or" \
					"\"callable not found\" above; not serving"
			else
				flaskbox_error "uWSGI exited with code $status before it was ready; see its log above"
			fi
			exit "$((status == 0 ? 1 : status))"
		fi
		sleep 0.05
	done
}

# _stop_process PID SIGNAL SECONDS [AT_SECONDS ACTION]
#   Sends SIGNAL, waits up to SECONDS for the process to exit, then kills it
#   (SIGKILL) and returns 137. Otherwise returns the process's exit code.
#   ACTION, if given, is called once with PID after AT_SECONDS.
_stop_process() {
	local pid="$1" signal="$2" seconds="$3" at="${4:-}" action="${5:-}" polls=0 status=0
	kill -"$signal" "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$polls" -ge $((seconds * 50)) ]; then
			flaskbox_error "pid $pid still running ${seconds}s after SIG$signal; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			return 137
		fi
		if [ -n "$action" ] && [ "$polls" -eq $((at * 50)) ]; then
			"$action" "$pid"
		fi
		sleep 0.02
		polls=$((polls + 1))
	done
	wait "$pid" 2>/dev/null || status=$?
	return "$status"
}

# _kill_busy_uwsgi_workers MASTER_PID
#   uWSGI 2.0 does not enforce worker-reload-mercy in a graceful stop
#   (measured: a stuck handler ran until docker's SIGKILL), so the workers
#   still running once the mercy is over are killed here. nginx has drained
#   first, so no client is waiting on them by then. Zombies (workers that
#   finished, not yet reaped by the master) are left alone.
_kill_busy_uwsgi_workers() {
	local master="$1" child stat busy=()
	local children_file="/proc/$master/task/$master/children"
	[ -r "$children_file" ] || return 0
	for child in $(<"$children_file"); do
		read -r stat 2>/dev/null <"/proc/$child/stat" || continue
		stat="${stat##*) }"
		[ "${stat%% *}" = Z ] || busy+=("$child")
	done
	[ "${#busy[@]}" -gt 0 ] || return 0
	flaskbox_error "uWSGI worker(s) ${busy[*]} still busy ${FLASKBOX_UWSGI_MERCY}s into the stop; killing them"
	kill -KILL "${busy[@]}" 2>/dev/null || true
}

# _prod_stop
#   Ordered graceful stop, inside docker's default 10 s grace: nginx stops
#   accepting and drains in-flight requests (SIGQUIT; its own limit is 5 s),
#   then uWSGI lets its now idle workers exit (SIGTERM; at most 2 s more,
#   FLASKBOX_UWSGI_MERCY). Worst case 6 + 3 s with the kill deadlines.
_prod_stop() {
	local status=0
	# One stop at a time: repeated signals while draining change nothing.
	trap '' TERM INT QUIT
	if [ ! -e "$RUNTIME_DIR/uwsgi.ready" ]; then
		# Still importing the app: nothing is served yet, and uWSGI acts on
		# SIGTERM only once its master loop runs.
		flaskbox_log "stopping before the app was ready"
		kill -KILL "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		wait "$FLASKBOX_UWSGI_PID" 2>/dev/null || true
		exit 0
	fi
	flaskbox_log "stopping: nginx drains, then uWSGI"
	if [ -n "${FLASKBOX_NGINX_PID:-}" ]; then
		_stop_process "$FLASKBOX_NGINX_PID" QUIT 6 || status=$?
	fi
	_stop_process "$FLASKBOX_UWSGI_PID" TERM $((FLASKBOX_UWSGI_MERCY + 1)) \
		"$FLASKBOX_UWSGI_MERCY" _kill_busy_uwsgi_workers || status=$?
	flaskbox_log "stopped"
	exit "$status"
}

# flaskbox_start_production
#   Starts uWSGI, then nginx, and supervises both: a stop signal stops them
#   in order; either one dying takes the container down (non-zero) so that
#   a restart policy or orchestrator replaces it.
flaskbox_start_production() {
	# The debugger must never be reachable in production.
	unset FLASK_DEBUG FLASK_ENV
	flaskbox_uwsgi_ini
	local ini_args=(--ini "$FLASKBOX_CONF_DIR/app.ini")
	[ -z "${UWSGI_INI:-}" ] || ini_args+=(--ini "$UWSGI_INI")
	ini_args+=(--ini "$RUNTIME_DIR/uwsgi-env.ini")
	unset UWSGI_INI
	FLASKBOX_NGINX_PID=
	# The stop runs inside the trap, so a signal arriving at any moment
	# (even before nginx has started) stops whatever is running, in order.
	trap _prod_stop TERM INT QUIT

	# uWSGI's stdout (and so the app's print()) joins stderr: stdout is kept
	# for nginx's access log, one line per request, e.g. JSON for a collector.
	# Files left by a killed predecessor would let nginx start too early.
	rm -f "$RUNTIME_DIR/uwsgi.sock" "$RUNTIME_DIR/uwsgi.ready"
	uwsgi "${ini_args[@]}" >&2 &
	FLASKBOX_UWSGI_PID=$!
	_prod_wait_until_ready
	nginx -e stderr -c "$RUNTIME_DIR/nginx/nginx.conf" &
	FLASKBOX_NGINX_PID=$!
	flaskbox_log "serving $APP_MODULE on port $PORT (nginx $FLASKBOX_NGINX_PID, uWSGI $FLASKBOX_UWSGI_PID)"

	local exited='' status=0
	# Returns only when a server exits on its own (a stop signal's trap
	# exits from inside the wait).
	until [ -n "$exited" ]; do
		status=0
		wait -n -p exited "$FLASKBOX_UWSGI_PID" "$FLASKBOX_NGINX_PID" || status=$?
	done
	local name=nginx
	[ "$exited" = "$FLASKBOX_UWSGI_PID" ] && name=uWSGI
	flaskbox_error "$name exited unexpectedly with code $status; stopping the container"
	exit "$((status == 0 ? 1 : status))"
}

# main ARG...
#   Options (or nothing) start a server; any other command is exec'd.
main() {
	if [ "$#" -gt 0 ] && [[ "$1" != -* ]]; then
		exec "$@"
	fi
	flaskbox_parse_args "$@"
	flaskbox_install_os_packages
	flaskbox_step_down "$@"
	flaskbox_configure "$FLASKBOX_MODE"
	flaskbox_install_on_start
	flaskbox_run_hooks
	flaskbox_configure "$FLASKBOX_MODE"
	flaskbox_prepare_runtime "$FLASKBOX_MODE"
	if [ "$FLASKBOX_MODE" = debug ]; then
		flaskbox_start_debug
	fi
	flaskbox_start_production
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
