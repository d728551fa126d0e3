#!/usr/bin/env bash
# Build the image and serve the app in production mode on this machine.
#   deploy/up.sh            -> http://127.0.0.1:8091/
# Works on a bare machine too: starts a Docker engine if none runs, and
# builds a Debian base image locally when BASE_IMAGE cannot be pulled.
#
# Environment:
#   IMAGE       tag to build and run            (default flaskbox:latest)
#   NAME        container name                  (default flaskbox)
#   HOST_PORT   port on this machine            (default 8091)
#   BASE_IMAGE  base for the build              (default: the Dockerfile's)
#   DOCKER_BUILD_ARGS  extra `docker build` arguments, e.g. mirror build args
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

IMAGE="${IMAGE:-flaskbox:latest}"
NAME="${NAME:-flaskbox}"
HOST_PORT="${HOST_PORT:-8091}"

log() { printf '[up] %s\n' "$*" >&2; }

# has_bridge: true when published ports (-p) can work on this engine.
has_bridge() {
	docker network inspect bridge >/dev/null 2>&1
}

main() {
	deploy/start-engine.sh
	BASE_IMAGE="$(deploy/base-image.sh)"
	log "building $IMAGE on $BASE_IMAGE"
	local revision created source
	revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
	created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	# The repository's URL, without any user or token it may carry.
	source="$(git remote get-url origin 2>/dev/null | sed -E 's#://[^/@]*@#://#' || true)"
	# shellcheck disable=SC2086 # DOCKER_BUILD_ARGS is a list of arguments
	docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
		--build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
		--build-arg "SOURCE=${source:-unknown}" ${DOCKER_BUILD_ARGS:-} -t "$IMAGE" .
	docker rm -f "$NAME" >/dev/null 2>&1 || true
	if has_bridge; then
		docker run -d --name "$NAME" -p "$HOST_PORT:80" "$IMAGE" >/dev/null
	else
		# Engines started without a bridge (like this project's CI) cannot
		# publish ports: share the host's network and move nginx instead.
		docker run -d --name "$NAME" --network host -e "PORT=$HOST_PORT" "$IMAGE" >/dev/null
	fi
	local i
	for i in $(seq 1 50); do
		if docker exec "$NAME" healthcheck.sh >/dev/null 2>&1; then
			log "serving on http://127.0.0.1:$HOST_PORT/ (container $NAME; stop: docker stop $NAME)"
			return 0
		fi
		if [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" != true ]; then
			break
		fi
		sleep 0.2
	done
	log "the container did not become ready after $i checks; its log follows"
	docker logs "$NAME" >&2
	exit 1
}

main "$@"
