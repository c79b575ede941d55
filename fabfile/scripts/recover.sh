#!/bin/sh
# Finish what an interrupted run left half-done: a config kept as .previous
# means the nginx switch never completed, so the previous config (whose
# containers still run) goes back.
# Usage: recover.sh CONF CONTAINER
set -eu
conf=$1 container=$2
if [ -e "$conf.previous" ]; then
  mv -f "$conf.previous" "$conf"
  if [ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" = true ]; then
    docker exec "$container" nginx -t -q && docker exec "$container" nginx -s reload 2>/dev/null
  fi
  echo 'restored the nginx config an interrupted switch left behind'
fi
