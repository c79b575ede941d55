#!/bin/sh
# Print the deploy lock's holder record, or "free". Never takes the lock while
# a live holder is on record, so it cannot make a starting deploy wait.
# Usage: lock_status.sh LOCK_FILE INFO_FILE
set -eu
lock_file=$1 info=$2
pid=$(sed -n 's/^{"pid": \([0-9][0-9]*\),.*/\1/p' "$info" 2>/dev/null || true)
if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/fd/9" 2>/dev/null)" = "$lock_file" ]; then
  cat "$info"
  exit 0
fi
mkdir -p "$(dirname "$lock_file")"
exec 9>>"$lock_file"
if flock -n 9; then
  # Nobody holds it: a record left behind is stale.
  rm -f "$info"
  echo free
else
  cat "$info" 2>/dev/null || echo '{}'
fi
