# flaskbox: one image, two modes for Flask apps.
#   production (default): nginx :80 -> unix socket -> uWSGI -> /app
#   debug (-d debug):     Flask dev server :5000 with auto-reload
#
#   docker build .                    the image with the sample app (target sample)
#   docker build --target runtime .   the same with an empty /app, to build FROM
#
# Builds unchanged on ubuntu:24.04 (default) and debian:bookworm, with the
# classic builder as well as BuildKit: no RUN --mount, no heredocs and no
# COPY --chmod, because Podman, Kaniko and older engines lack them.
ARG BASE_IMAGE=ubuntu:24.04
# A package index reachable from your network, e.g.
# https://pypi.tuna.tsinghua.edu.cn/simple. Read by pip from the environment.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST=
# An image of the uwsgi-wheel stage of an earlier build, whose wheel is used
# if made from the same lock and packages (CI's emulated arm64 build, where
# compiling takes minutes). The default, no wheel, compiles uWSGI.
ARG PREBUILT_UWSGI=uwsgi-none

# ---------------------------------------------------------------------------
# base: apt configured once (mirror, no recommends) for both later stages.
FROM ${BASE_IMAGE} AS base

# Where apt downloads from. Empty keeps the distribution's own archive; set it
# to a mirror's root for this distribution when that archive is out of reach,
# e.g. http://mirrors.tuna.tsinghua.edu.cn/ubuntu (or .../debian, or
# .../ubuntu-ports on arm64). Plain http: the official base images have no CA
# certificates yet, and apt checks every package's signature anyway.
ARG APT_MIRROR=

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# apt must never stop at a prompt (tzdata asks for a zone), here or in images
# built FROM this one.
ENV DEBIAN_FRONTEND=noninteractive

RUN set -eux; \
	if [ -n "$APT_MIRROR" ]; then \
		sed -i -E \
			-e "s#https?://(deb\.debian\.org/debian|(archive|security)\.ubuntu\.com/ubuntu|ports\.ubuntu\.com/ubuntu-ports)#${APT_MIRROR%/}#g" \
			/etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; \
	fi; \
	# Recommends would pull in compilers and docs we never use.
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
		> /etc/apt/apt.conf.d/99flaskbox-no-recommends; \
	grep -rhE '^(deb |URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true

# ---------------------------------------------------------------------------
# toolchain: the compiler and the venv, for the uwsgi and build stages only.
FROM base AS toolchain
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN set -eux; \
	apt-get update; \
	# gcc + python3-dev build uWSGI; libpcre2-dev gives it PCRE (internal
	# routing), for UWSGI_* route options of yours; libssl-dev gives it the
	# WebSocket handshake (uwsgi.websocket_handshake, which Flask-SocketIO's
	# uWSGI mode calls; without OpenSSL uWSGI 2.0 refuses it). Each library
	# uWSGI's build finds by its header is named, not left to another
	# package's dependencies: libcrypt-dev (router_basicauth's crypt.h),
	# which Debian 14's libc6-dev no longer pulls in, stopped that build;
	# libexpat1-dev and zlib1g-dev (XML configs, gzip) came with python3-dev.
	apt-get install -y --no-install-recommends \
		ca-certificates gcc libc6-dev libcrypt-dev libexpat1-dev libpcre2-dev libssl-dev zlib1g-dev \
		python3 python3-dev python3-venv; \
	rm -rf /var/lib/apt/lists/*; \
	python3 -m venv /opt/venv; \
	/opt/venv/bin/python --version

# ---------------------------------------------------------------------------
# uwsgi: uWSGI compiled into a wheel in /uwsgi-wheel/, with its SHA256SUMS
# and built-from.txt: the lock's lines of uWSGI and of setuptools (which
# builds it), and every package of the stage (compiler, libraries, python3)
# at its version and architecture. PREBUILT_UWSGI's, if made from the same.
FROM scratch AS uwsgi-none
WORKDIR /uwsgi-wheel
FROM ${PREBUILT_UWSGI} AS uwsgi-prebuilt
FROM toolchain AS uwsgi
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY requirements.lock /tmp/
COPY --from=uwsgi-prebuilt /uwsgi-wheel/ /uwsgi-wheel/
RUN set -eux; \
	# setuptools from the lock (--no-build-isolation), not one pip would fetch unchecked.
	sed -n '/^setuptools==/,/[^\\]$/p' /tmp/requirements.lock > /tmp/setuptools.lock; \
	sed -n '/^uwsgi==/,/[^\\]$/p' /tmp/requirements.lock > /tmp/uwsgi.lock; \
	{ cat /tmp/setuptools.lock /tmp/uwsgi.lock; dpkg-query -W -f '${Package}:${Architecture} ${Version}\n'; } >/tmp/built-from.txt; \
	if cmp -s /uwsgi-wheel/built-from.txt /tmp/built-from.txt && sha256sum -c /uwsgi-wheel/SHA256SUMS; then \
		echo "uWSGI: PREBUILT_UWSGI's wheel, made from the same lock and packages"; \
	else \
		# None given (the default), or made from other inputs (the diff): compiled.
		diff /uwsgi-wheel/built-from.txt /tmp/built-from.txt 2>/dev/null || true; \
		rm -rf /uwsgi-wheel/*; \
		/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /tmp/setuptools.lock; \
		# uWSGI is built as a module of the distribution's own python3 (pyuwsgi,
		# from uWSGI's setup.pyuwsgi.py), not as a program around its shared
		# libpythonX.Y: Debian's and Ubuntu's shared library runs the app's
		# Python 1.3 to 1.5 times slower than their python3 command does
		# (docs/BENCHMARKS.md, "The interpreter"). The same checked sdist, its
		# distribution still named uWSGI; `uwsgi` is its command.
		/opt/venv/bin/pip download --no-cache-dir --disable-pip-version-check --require-hashes \
			--no-deps --no-binary :all: --no-build-isolation -d /tmp/uwsgi -r /tmp/uwsgi.lock; \
		tar -xzf /tmp/uwsgi/uwsgi-*.tar.gz -C /tmp/uwsgi; \
		src="$(echo /tmp/uwsgi/uwsgi-*/)"; \
		sed "s/name='pyuwsgi'/name='uWSGI'/" "$src/setup.pyuwsgi.py" > "$src/setup.py"; \
		grep -q "name='uWSGI'" "$src/setup.py"; \
		/opt/venv/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
			-w /uwsgi-wheel "$src"; \
		cp /tmp/built-from.txt /uwsgi-wheel/; \
		sha256sum /uwsgi-wheel/*.whl > /uwsgi-wheel/SHA256SUMS; \
	fi; \
	rm -rf /tmp/uwsgi /tmp/*.lock /tmp/built-from.txt

# uwsgi-wheel: that folder alone, as CI keeps it (docker build --target uwsgi-wheel).
FROM scratch AS uwsgi-wheel
COPY --from=uwsgi /uwsgi-wheel/ /uwsgi-wheel/

# ---------------------------------------------------------------------------
# build: installs uWSGI's wheel and requirements.txt into /opt/venv.
FROM toolchain AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
# Only the wheel (cached by content: a prebuilt one is the same layer), the
# pins and their locks are copied, so this layer stays cached until they
# change, however often app code does. Every file pip installs is checked
# against a lock's sha256 (--require-hashes); deploy/lock.sh makes the locks.
COPY --from=uwsgi-wheel /uwsgi-wheel/ /tmp/uwsgi/
COPY requirements.txt requirements.lock /tmp/
COPY lib/gevent-requirements.lock lib/sbom/requirements.lock /tmp/lib/
RUN set -eux; \
	pip_install() { /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes "$@"; }; \
	# setuptools first, from the lock: any sdist builds with it (--no-build-isolation).
	sed -n '/^setuptools==/,/[^\\]$/p' /tmp/requirements.lock > /tmp/setuptools.lock; \
	pip_install -r /tmp/setuptools.lock; \
	sed '/^uwsgi==/,/[^\\]$/d' /tmp/requirements.lock > /tmp/others.lock; \
	# As from an index, so that pip records uWSGI==2.0.31 (no file:// URL) for the SBOM.
	/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index \
		--find-links /tmp/uwsgi "uWSGI==$(sed -n 's/^uwsgi==\([^ ]*\).*/\1/p' /tmp/requirements.lock)"; \
	# The uwsgi command: -P, so that sys.path gains no /opt/venv/bin, as
	# a program embedding Python gave it none. It is the pool's __main__,
	# which multiprocessing's spawn and forkserver run again in each child
	# (as __mp_main__): only __main__ starts uWSGI.
	printf '%s\n' '#!/opt/venv/bin/python3 -P' 'if __name__ == "__main__":' '    import sys' \
		'    from pyuwsgi import run' '    sys.exit(run())' > /opt/venv/bin/uwsgi; \
	chmod 0755 /opt/venv/bin/uwsgi; \
	rm -rf /tmp/uwsgi; \
	pip_install --use-pep517 --no-build-isolation -r /tmp/others.lock; \
	# The lock must still say what requirements.txt says: a pin added or
	# changed without deploy/lock.sh fails here, not silently.
	if ! /opt/venv/bin/pip install --dry-run --no-index --no-deps --quiet --disable-pip-version-check \
		-r /tmp/requirements.txt; then \
		echo "requirements.txt names a version requirements.lock lacks: run deploy/lock.sh" >&2; \
		exit 1; \
	fi; \
	# gevent for WORKER_CLASS=gevent, in a directory of its own that only
	# that mode puts on sys.path (app.ini): libraries that pick gevent when
	# they can import it (Flask-SocketIO, python-engineio) keep their
	# threading mode under the sync workers and the dev server.
	pip_install --target /opt/venv/gevent -r /tmp/lib/gevent-requirements.lock; \
	# gevent's own test suite ships test keys and certificates (and 1 MB):
	# nothing serves from it, and no private key belongs in the image.
	rm -rf /opt/venv/gevent/gevent/tests; \
	# The SBOM generator's library, for the sbom stage only (never shipped).
	pip_install --no-deps --only-binary :all: --target /opt/sbom-tool -r /tmp/lib/requirements.lock; \
	# setuptools stays (requirements.txt says why); --all records it, which
	# pip freeze leaves out by default below Python 3.12. pip stays too, so
	# that images built FROM this one can add their own requirements.
	# The versions tested here: the start names any an image FROM this one
	# replaced (lib/flaskbox/userapp/packages.py).
	/opt/venv/bin/pip freeze --disable-pip-version-check --all --exclude pip > /opt/venv/flaskbox-tested.txt; \
	/opt/venv/bin/pip freeze --disable-pip-version-check --path /opt/venv/gevent \
		>> /opt/venv/flaskbox-tested.txt; \
	# Record the OS packages that own the shared libraries compiled code in
	# the venv links to (libpq for psycopg2, OpenSSL for uWSGI, ...):
	# the runtime stage installs exactly these, whatever the base's names.
	# Libraries a wheel bundles in the venv itself (numpy.libs/, ...) need no
	# package. `dpkg -S` prints "pkg[:arch][, pkg2]: /path"; match the name.
	find /opt/venv -type f -name '*.so' -exec ldd {} + 2>/dev/null \
		| awk '$2 == "=>" && $3 ~ /^\// && $3 !~ /^\/opt\/venv\// {print $3}' | sort -u \
		| while read -r lib; do \
			{ dpkg -S "*/${lib##*/}" 2>/dev/null || true; } \
				| awk -F': ' -v lib="/${lib##*/}" 'substr($2, length($2) - length(lib) + 1) == lib {print $1}'; \
		done | tr ',' '\n' | sed -e 's/^ *//' -e 's/:.*//' | sort -u > /opt/venv/os-deps.txt; \
	# uWSGI runs in python3's own interpreter: it must not load the shared one.
	if ldd /opt/venv/lib/python3*/site-packages/pyuwsgi*.so | grep libpython; then exit 1; fi; \
	cat /opt/venv/os-deps.txt; \
	/opt/venv/bin/python -c 'import distutils.util'; \
	/opt/venv/bin/uwsgi --version

# ---------------------------------------------------------------------------
# contents: everything that ships, before its SBOM and metadata (runtime).
FROM base AS contents
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The uid:gid that serves (USER below; the entry-point steps down to it when
# started as root), and where flaskbox's own code lives (lib/ in the repo).
# Group 0, as OpenShift runs any uid: what one uid of group 0 makes (umask
# 002, entry-point.sh) another may write, the image's user included.
ENV FLASKBOX_USER=10001:0 \
	FLASKBOX_LIB=/usr/local/lib/flaskbox

# The libraries the venv's compiled code needs, as found in the build stage.
COPY --from=build /opt/venv/os-deps.txt /tmp/os-deps.txt
# hadolint ignore=DL3008,SC2046
RUN set -eux; \
	apt-get update; \
	# tini: PID 1 for debug mode and other commands: forwards signals, reaps zombies.
	apt-get install -y --no-install-recommends \
		ca-certificates nginx python3 tini \
		$(cat /tmp/os-deps.txt); \
	# Package lists and apt's caches (78 MB on a debootstrap base, which,
	# unlike the official images, has no docker-clean hook) never ship.
	rm -rf /var/lib/apt/lists/* /var/cache/apt/* /tmp/os-deps.txt; \
	# The distribution's default site and log files are never used: ours
	# renders its own config and logs to stdout/stderr.
	rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/nginx/conf.d /var/log/nginx/*; \
	# Non-root user that serves requests, in group 0. Group 0 owns nothing
	# writable in the image, so any uid (OpenShift's --user 12345:0) works
	# the same and gains nothing from the group.
	useradd --system --uid "${FLASKBOX_USER%:*}" --gid "${FLASKBOX_USER#*:}" --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin app; \
	# Whether this nginx bounds the number of header lines (max_headers:
	# upstream's, backported to Debian 12): only then may the header take
	# nginx's default 4 buffers (lib/flaskbox/layout.py, HEADER_LINE).
	mkdir -p /etc/flaskbox; \
	printf 'events {}\nhttp { max_headers 1000; }\n' > /tmp/max-headers.conf; \
	if nginx -t -q -c /tmp/max-headers.conf; then touch /etc/flaskbox/nginx-max-headers; fi; \
	rm -f /tmp/max-headers.conf; \
	# Whether this nginx turns HTTP/2 on with its own directive (1.25.1 and
	# later, Debian 13) or as a parameter of `listen` (Debian 12's 1.22,
	# Ubuntu 24.04's 1.24): lib/flaskbox/start/tls.py writes the one it has.
	printf 'events {}\nhttp { http2 on; }\n' > /tmp/http2.conf; \
	if nginx -t -q -c /tmp/http2.conf; then touch /etc/flaskbox/nginx-http2-directive; fi; \
	rm -f /tmp/http2.conf; \
	# Whether this nginx keeps connections to an upstream open by default
	# (1.29.7 and later, Debian 14), which only `keepalive 0` turns off and
	# which older ones refuse: uWSGI closes each connection after its
	# answer, so a kept one fails the next request sent on it (502 for a
	# POST). lib/flaskbox/start/render.py writes the line where this nginx has it.
	printf 'events {}\nhttp { upstream u { server unix:/run/u.sock; keepalive 0; } }\n' > /tmp/keepalive.conf; \
	if nginx -t -q -c /tmp/keepalive.conf; then touch /etc/flaskbox/nginx-upstream-keepalive; fi; \
	rm -f /tmp/keepalive.conf; \
	nginx -v; tini --version

# Extra OS packages for the app, one or more per line, '#' comments allowed,
# Windows line endings too (their \r would be part of each name). An
# unknown name fails the build with apt's own error, on purpose.
COPY requirements_os.txt /tmp/requirements_os.txt
# hadolint ignore=DL3008,SC2086
RUN set -eux; \
	packages="$(sed -e 's/#.*//' -e 's/\r$//' /tmp/requirements_os.txt | xargs)"; \
	if [ -n "$packages" ]; then \
		apt-get update; \
		apt-get install -y --no-install-recommends $packages; \
		rm -rf /var/lib/apt/lists/* /var/cache/apt/*; \
	fi; \
	rm /tmp/requirements_os.txt

COPY --from=build /opt/venv /opt/venv

# The venv first on PATH, so python, pip, flask and uwsgi are its own.
# PYTHONUNBUFFERED: output reaches `docker logs` at once, not on exit.
# LANG: UTF-8 text by default (open(), print(), file names, logging), in
# every process. The python3 command coerces the C locale to UTF-8 by
# itself (PEP 538), but uWSGI's embedded Python does not: without this,
# production read and wrote ASCII (print('中文') escaped, a Chinese template
# name a 500), while debug mode, run by python3, worked.
ENV PATH=/opt/venv/bin:$PATH \
	PYTHONUNBUFFERED=1 \
	LANG=C.UTF-8

# The config templates, the scripts, and flaskbox's Python (settings,
# rendering, the WSGI wrapper, the dev server), which the venv finds
# through a .pth file.
COPY nginx.conf nginx-static.conf app.ini /etc/flaskbox/
COPY entry-point.sh healthcheck.sh /usr/local/bin/
COPY lib/ ${FLASKBOX_LIB}/
RUN set -eux; \
	mkdir -p /docker-entrypoint.d; \
	chmod -R a+rX,go-w /etc/flaskbox "$FLASKBOX_LIB"; \
	chmod 0755 /usr/local/bin/entry-point.sh /usr/local/bin/healthcheck.sh "$FLASKBOX_LIB/sbom/sbom.sh"; \
	# What images built FROM this one run to rewrite the SBOM (lib/sbom).
	ln -s "$FLASKBOX_LIB/sbom/sbom.sh" /usr/local/bin/flaskbox-sbom; \
	site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"; \
	# Its second line names refused writes next to the app's code when a
	# hook fails (lib/flaskbox/userapp/hook_writes.py; a no-op otherwise).
	printf '%s\nimport flaskbox.userapp.hook_writes\n' "$FLASKBOX_LIB" > "$site/flaskbox.pth"; \
	python3 -I -m flaskbox settings >/dev/null; \
	# The one place under /app an app may write: Flask's instance folder
	# (SQLite, uploads), where a volume goes (docs/your-app.md). Owned by the
	# serving user and group 0, so any uid in group 0 (OpenShift) may write,
	# and a named volume mounted there starts out that way too. setgid: what
	# is made below it belongs to group 0 as well (WRITABLE_PATHS' folders),
	# so a later start under another uid of group 0 may write there.
	install -d -o "${FLASKBOX_USER%:*}" -g 0 -m 2775 /app/instance; \
	# No setuid or setgid programs (CIS Docker Benchmark 4.8): nothing in the
	# container may gain privileges, so su, passwd, mount and any such program
	# from requirements_os.txt lose those bits.
	find / -xdev -perm /6000 -type f -exec chmod a-s {} +; \
	uwsgi --version; python3 -c 'import flask; print(flask.__name__, "ok")'

# flaskbox's own licence (MIT); the SBOM names every bundled component's.
COPY LICENSE /usr/share/doc/flaskbox/LICENSE
# `docker exec CONTAINER flask ...` starts no entry-point: lib/bin/flask,
# first on PATH, points the flask command at the app the container serves.
ENV PATH=${FLASKBOX_LIB}/bin:$PATH
# SQLite makes its files 0644 whatever the umask: created first with the
# umask (lib/flaskbox/userapp/sqlite_files.py), so that another uid of group 0 may
# write them. The .pth sorts after flaskbox.pth, which puts flaskbox on sys.path.
RUN set -eux; \
	chmod 0755 "$FLASKBOX_LIB/bin/flask"; \
	site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"; \
	printf 'import flaskbox.userapp.sqlite_files\n' > "$site/flaskbox_sqlite.pth"; \
	chmod 0644 /usr/share/doc/flaskbox/LICENSE; \
	flask --version

# ---------------------------------------------------------------------------
# sbom: the SBOM of exactly what `contents` holds, written by the same command
# images built FROM this one run (flaskbox-sbom), with the generator's library
# from the build stage (fetched there through PIP_INDEX_URL, hash-checked).
# Only the document leaves this stage.
FROM contents AS sbom
COPY --from=build /opt/sbom-tool /opt/sbom-tool
ARG VERSION=dev
ARG LICENSES=MIT
RUN SBOM_TOOL=/opt/sbom-tool flaskbox-sbom --name flaskbox --version "$VERSION" --license "$LICENSES" \
	/sbom.cdx.json

# ---------------------------------------------------------------------------
# runtime: what actually ships, with its SBOM (docs/building.md).
FROM contents AS runtime
ARG BASE_IMAGE
COPY --from=sbom /sbom.cdx.json /usr/share/doc/flaskbox/sbom.cdx.json

WORKDIR /app

# Where an image comes from, for `docker inspect` and registries (OCI
# annotations), e.g. --build-arg VERSION=1.2.0 and, as deploy/up.sh passes them,
#   --build-arg REVISION="$(git rev-parse HEAD)"
#   --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
#   --build-arg SOURCE="$(git remote get-url origin)"
# SOURCE: the repository's URL; LICENSES: an SPDX expression, flaskbox's own
# (LICENSE; each bundled component's is in the SBOM).
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
ARG LICENSES=MIT
LABEL org.opencontainers.image.title="flaskbox" \
	org.opencontainers.image.description="Flask image with two modes: nginx + uWSGI production, Flask dev server debug" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.created="${CREATED}" \
	org.opencontainers.image.source="${SOURCE}" \
	org.opencontainers.image.licenses="${LICENSES}" \
	org.opencontainers.image.base.name="${BASE_IMAGE}"

# FLASKBOX_USER is numeric (10001:0); hadolint cannot see into the variable.
# hadolint ignore=DL3066
USER ${FLASKBOX_USER}
EXPOSE 80 5000

# Liveness: nginx -> unix socket -> a uWSGI worker, answered without the
# app's routes; busy counts as alive (lib/flaskbox/sidecars/health.py).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
	CMD ["/usr/local/bin/healthcheck.sh"]

# SIGTERM is docker's default, kept on purpose: the arbiter stops in order
# (nginx drains with SIGQUIT, then uWSGI finishes its workers), within
# STOP_TIMEOUT (match it to docker's --stop-timeout).
# SIGQUIT would be nginx's graceful signal but is uWSGI's brutal shutdown,
# so neither server's own choice fits both.
STOPSIGNAL SIGTERM

# The entry-point is PID 1: in production it execs PID 1 into the arbiter
# (flaskbox/arbiter/), which supervises the servers (and reaps orphans), so
# it cannot be killed from inside the container; debug mode and other
# commands it runs under tini (entry-point.sh says why). env holds the stop
# signals first: PID 1 drops one that comes before a handler, and bash's
# start has none (beside busy CPUs, 3 runs of test_stop_anytime in 10 lost
# one); held, it waits.
ENTRYPOINT ["/usr/bin/env", "--block-signal=TERM,INT,QUIT", "/usr/local/bin/entry-point.sh"]
CMD []

# ---------------------------------------------------------------------------
# sample, the default target: the runtime image with the sample app in /app.
# To build your own image FROM this one, build `--target runtime` instead
# (an empty /app), so that no sample is left behind next to your app.
FROM runtime AS sample
USER 0
# App code last: editing it rebuilds only these layers.
COPY app/ /app/
# Its fingerprint: a start that finds the sample unchanged next to other code
# says so instead of serving the sample (lib/flaskbox/settings/resolve.py).
RUN sha256sum /app/app.py > /etc/flaskbox/sample-app.sha256
# hadolint ignore=DL3066
USER ${FLASKBOX_USER}
