#!/bin/sh
# Finish what an interrupted run left half-done: a file kept as .previous
# means the nginx switch never completed, so the previous config and slot
# groups (whose containers still run) go back.
# Usage: recover.sh CONF CONTAINER [SLOT_CONF]...
set -eu
conf=$1 container=$2
shift 2
restored=0
for file in "$conf" "$@"; do
  if [ -e "$file.previous" ]; then
    mv -f "$file.previous" "$file"
    restored=1
  fi
done
if [ "$restored" = 1 ]; then
  if [ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" = true ]; then
    docker exec "$container" nginx -t -q && docker exec "$container" nginx -s reload 2>/dev/null
  fi
  echo 'restored the nginx config an interrupted switch left behind'
fi
