#!/bin/sh
# After the switch: let old containers drain, stop them (each with its own
# stop_grace_seconds, which compose set as its stop timeout), start the new
# workers, remove the old containers and point `current` at the release.
# Usage: finish.sh DRAIN_SECONDS PROJECT COMPOSE_FILE CURRENT_LINK RELEASE_ID [worker:NAME|old:PROJECT]...
set -eu
drain=$1 project=$2 compose_file=$3 current=$4 release_id=$5
shift 5
workers="" old=""
for item in "$@"; do
  case $item in
    worker:*) workers="$workers ${item#worker:}" ;;
    old:*) old="$old ${item#old:}" ;;
    *) echo "finish.sh: unknown item $item" >&2; exit 2 ;;
  esac
done
containers_of() { docker ps -aq --filter "label=com.docker.compose.project=$1"; }
if [ -n "$old" ] && [ "$drain" -gt 0 ]; then sleep "$drain"; fi
for name in $old; do
  containers_of "$name" | xargs -r docker stop >/dev/null
done
if [ -n "$workers" ]; then
  # shellcheck disable=SC2086 # service names: validated, no blanks
  docker compose -p "$project" -f "$compose_file" up -d --no-deps $workers
fi
for name in $old; do
  containers_of "$name" | xargs -r docker rm -f >/dev/null
done
ln -sfn "releases/$release_id" "$current.new"
mv -T "$current.new" "$current"
