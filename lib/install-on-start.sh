#!/usr/bin/env bash
# INSTALL_ON_START=1 (debug mode only): install /app/requirements.txt (pip)
# and /app/requirements_os.txt (apt) when the container starts, for quick
# experiments without a rebuild. Sourced by entry-point.sh, never run.
#
# OS packages need root: flaskbox_install_os_packages runs before the step
# down; flaskbox_install_on_start runs after it, as the serving user.

# Files INSTALL_ON_START installs from, and the record of the OS packages
# installed (kept beside what apt changed, so it goes with the container).
FLASKBOX_REQUIREMENTS=/app/requirements.txt
FLASKBOX_REQUIREMENTS_OS=/app/requirements_os.txt
FLASKBOX_OS_MARKER=/var/lib/flaskbox/requirements_os.sha256

# _sha256 FILE
#   The checksum of FILE's content: what INSTALL_ON_START compares with the
#   last install, so that a restart with unchanged files installs nothing.
_sha256() {
	local sum
	sum="$(sha256sum <"$1")"
	printf '%s\n' "${sum%% *}"
}

# _missing_os_packages FILE
#   The packages a requirements_os.txt lists ('#' comments and Windows line
#   endings dropped, as the Dockerfile reads it) that dpkg does not have
#   installed.
_missing_os_packages() {
	local pkg packages=() missing=()
	# Every word of the file, across lines (read stops at the end: status 1).
	read -r -d '' -a packages < <(sed -e 's/#.*//' -e 's/\r$//' "$1") || true
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
	flaskbox_check debug
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
		{ flaskbox_unheld apt-get update && flaskbox_unheld apt-get install -y --no-install-recommends $missing; } >&2 || status=$?
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
	# A site dir, not just a path: its own .pth files count too (flaskbox's).
	printf 'import site; site.addsitedir(%s)\n' "'$base'" >"$site/flaskbox-image-venv.pth"
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
		flaskbox_unheld "$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
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

