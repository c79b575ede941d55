#!/bin/sh
# Remove accessory CONTAINER (and PREVIOUS, an upgrade's leftover) and its
# ENV_FILE. The named volumes it writes (VOLUME..., and any it mounts
# read-write) are removed with DELETE_DATA 1, unless another container uses
# one, else kept; prints a line for each: "kept volume NAME" or "removed
# volume NAME".
# Usage: accessory_remove.sh CONTAINER PREVIOUS ENV_FILE DELETE_DATA [VOLUME]...
set -eu
container=$1 previous=$2 env_file=$3 delete_data=$4
shift 4
volumes=$(printf '%s\n' "$@")
for name in "$container" "$previous"; do
  if docker container inspect "$name" >/dev/null 2>&1; then
    volumes="$volumes
$(docker inspect -f '{{range .Mounts}}{{if and (eq .Type "volume") .RW}}{{println .Name}}{{end}}{{end}}' "$name")"
    docker rm -f "$name" >/dev/null
    echo "removed container $name"
  fi
done
# The env file, and any copy of it a killed start or upgrade left.
rm -f "$env_file" "$env_file".*
for volume in $(printf '%s\n' "$volumes" | sort -u); do
  docker volume inspect "$volume" >/dev/null 2>&1 || continue
  if [ "$delete_data" = 1 ]; then
    if docker volume rm "$volume" >/dev/null 2>&1; then
      echo "removed volume $volume"
    else
      echo "kept volume $volume (a container still uses it)"
    fi
  else
    echo "kept volume $volume"
  fi
done
