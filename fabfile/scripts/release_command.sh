#!/bin/sh
# Run a release command (migrations) once, in a new container of the release,
# for at most LIMIT seconds: past that the container is removed, not left
# running against the database.
# Usage: release_command.sh LIMIT PROJECT COMPOSE_FILE SERVICE CONTAINER_NAME COMMAND...
set -eu
limit=$1 project=$2 compose_file=$3 service=$4 name=$5
shift 5
docker rm -f "$name" >/dev/null 2>&1 || true
status=0
timeout -k 10 "$limit" docker compose -p "$project" -f "$compose_file" run --rm --no-deps -T --name "$name" "$service" "$@" || status=$?
docker rm -f "$name" >/dev/null 2>&1 || true
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "the release command ran past ${limit}s and was stopped" >&2
  exit 124
fi
exit "$status"
