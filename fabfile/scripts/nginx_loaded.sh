#!/bin/sh
# Whether nginx in CONTAINER runs the config files it has: prints `stale`
# and the newest FILE changed after its workers started (nginx reads its
# files when it starts or reloads), else `current`. Nothing when nginx does
# not run.
# Usage: nginx_loaded.sh CONTAINER FILE...
set -u
container=$1
shift
# The youngest worker's age in seconds: it started at the last start or reload.
age=$(timeout 5 docker top "$container" -eo pid,etimes,args 2>/dev/null \
  | awk '/nginx: worker process$/ {print $2}' | sort -n | head -n 1)
[ -n "$age" ] || exit 0
started=$(( $(date +%s) - age ))
for file in "$@"; do
  changed=$(stat -c %Y -- "$file" 2>/dev/null) || continue
  # A second of slack: both clocks count whole seconds.
  if [ "$changed" -gt $(( started + 1 )) ]; then
    echo "stale $file"
    exit 0
  fi
done
echo current
