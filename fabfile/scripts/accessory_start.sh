#!/bin/sh
# Bring accessory CONTAINER up without changing one that exists: a running
# one is left alone, a stopped one is started as it is. A missing one is
# created with the `docker create` arguments after `--`, its environment
# (stdin, read in any case) written to ENV_FILE first, mode 0600, and each
# host folder (dir:PATH) made first (Docker would make it root's). When an
# interrupted upgrade left only the old container, renamed PREVIOUS, that one
# is put back. Prints what it did: running, started, restored or created.
# Usage: accessory_start.sh CONTAINER PREVIOUS ENV_FILE [dir:PATH]... -- CREATE_ARG...
set -eu
container=$1 previous=$2 env_file=$3
shift 3
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  mkdir -p "${1#dir:}"
  shift
done
shift
mkdir -p "${env_file%/*}"
chmod 700 "${env_file%/*}"
incoming=$(mktemp "$env_file.XXXXXX")
trap 'rm -f "$incoming"' EXIT
trap 'exit 143' TERM INT HUP
cat > "$incoming"

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
mv -f "$incoming" "$env_file"
docker create "$@" >/dev/null
docker start "$container" >/dev/null
echo created
