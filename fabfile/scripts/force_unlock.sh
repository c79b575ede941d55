#!/bin/sh
# Stop the process holding the deploy lock, only if PID really is that holder
# (its descriptor 9 is the lock file): a stale or missing pid signals nobody.
# Usage: force_unlock.sh LOCK_FILE INFO_FILE PID
set -eu
lock_file=$1 info=$2 pid=$3
case $pid in
  ''|0|*[!0-9]*) echo "no holder pid on record; nothing was signalled" >&2; exit 3 ;;
esac
if [ "$(readlink "/proc/$pid/fd/9" 2>/dev/null)" != "$lock_file" ]; then
  echo "pid $pid does not hold $lock_file (it has ended or is another process); nothing was signalled" >&2
  exit 3
fi
# The holder first (its reader ending would make it wait for in-flight steps), then what it started.
children=$(pgrep -P "$pid" || true)
kill -TERM "$pid" 2>/dev/null || true
for child in $children; do kill -TERM "$child" 2>/dev/null || true; done
rm -f "$info"
