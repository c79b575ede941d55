#!/bin/sh
# Remove accessory CONTAINER (and PREVIOUS, an upgrade's leftover) and its
# ENV_FILE. Its named volumes (VOLUME..., and any it mounts) are removed with
# DELETE_DATA 1, else kept; prints a line for each: "kept NAME" or "removed NAME".
# Usage: accessory_remove.sh CONTAINER PREVIOUS ENV_FILE DELETE_DATA [VOLUME]...
set -eu
container=$1 previous=$2 env_file=$3 delete_data=$4
shift 4
volumes=$(printf '%s\n' "$@")
for name in "$container" "$previous"; do
  if docker container inspect "$name" >/dev/null 2>&1; then
    volumes="$volumes
$(docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{println .Name}}{{end}}{{end}}' "$name")"
    docker rm -f "$name" >/dev/null
    echo "removed container $name"
  fi
done
rm -f "$env_file"
for volume in $(printf '%s\n' "$volumes" | sort -u); do
  docker volume inspect "$volume" >/dev/null 2>&1 || continue
  if [ "$delete_data" = 1 ]; then
    docker volume rm "$volume" >/dev/null
    echo "removed volume $volume"
  else
    echo "kept volume $volume"
  fi
done
