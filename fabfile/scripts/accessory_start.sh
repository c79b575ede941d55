#!/bin/sh
# Bring accessory CONTAINER up without changing one that exists: a running
# one is left alone, a stopped one is started as it is. A missing one is
# created with the `docker create` arguments CREATE_ARG..., its environment
# (stdin, read in any case) written to ENV_FILE first, mode 0600, and the
# host folders it mounts (FOLDERS, one a line) made first. When an
# interrupted upgrade left only the old container, renamed PREVIOUS, that one
# is put back. Prints what it did: running, started, restored or created.
# Usage: accessory_start.sh CONTAINER PREVIOUS ENV_FILE FOLDERS CREATE_ARG...
set -eu
container=$1 previous=$2 env_file=$3 folders=$4
shift 4
accessory_incoming=
trap 'rm -f "$accessory_incoming"' EXIT
trap 'exit 143' TERM INT HUP
accessory_environment "$env_file" "$folders"

exists() { docker container inspect "$1" >/dev/null 2>&1; }

outcome=
if ! exists "$container" && exists "$previous"; then
  docker rename "$previous" "$container"
  outcome=restored
fi
if exists "$container"; then
  if [ "$(docker inspect -f '{{.State.Running}}' "$container")" = true ]; then
    echo "${outcome:-running}"
  else
    # An upgrade cut off while it stopped the container left Docker told not to restart it.
    docker update --restart unless-stopped "$container" >/dev/null
    docker start "$container" >/dev/null
    echo "${outcome:-started}"
  fi
  exit 0
fi
mv -f "$accessory_incoming" "$env_file"
docker create "$@" >/dev/null
docker start "$container" >/dev/null
echo created
