#!/bin/sh
# Put accessory NAME's data back from DUMP (the caller has checked its sha256
# and stopped the app's containers), the way its backup says: `files` stops
# the container, copies the dump to its `file` and starts it; a restore
# command runs in the running container with the dump on its stdin. Either
# way it waits for the accessory's health check. When the copy fails, the
# container is started again as it was.
# Usage: restore_accessory.sh CONF NAME DUMP
set -eu
conf=$1 name=$2 dump=$3
here=$(dirname "$0")
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$here/lib_installed.sh"
# shellcheck source=SCRIPTDIR/lib_healthy.sh
. "$here/lib_healthy.sh"
backups=$(setting BACKUPS_DIR)
exec 9>"$backups/.lock"
flock -w "$(setting LOCK_WAIT_SECONDS)" 9 || { echo "another backup, verify or restore holds $backups/.lock" >&2; exit 1; }
container=$(accessory "$name" .container)
[ -n "$container" ] || { echo "accessory $name has no backup in $conf: run provision" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$(accessory "$name" '.restore | length')" = 0 ]; then
  docker stop --time "$(accessory "$name" .stop_seconds)" "$container" >/dev/null
  if ! copy_dump "$dump" "$container" "$(accessory "$name" .file)" 2>"$work/copy.err"; then
    docker start "$container" >/dev/null || true
    echo "accessory $name: docker cp of the dump failed, its data is as it was: $(tail -n 1 "$work/copy.err")" >&2
    exit 1
  fi
  docker start "$container" >/dev/null
elif ! with_words "$name" .restore docker exec -i "$container" <"$dump" >/dev/null 2>"$work/restore.err"; then
  echo "accessory $name: its restore command failed: $(grep -v '^$' "$work/restore.err" | tail -n 2 | tr '\n' ' ')" >&2
  exit 1
fi
if ! wait_healthy "$(accessory "$name" .health_seconds)" "$(setting UNHEALTHY_EXIT)" \
    "$container||$(accessory "$name" .health_port)|$(accessory "$name" .health_path)" >"$work/health"; then
  echo "accessory $name is not healthy after the restore: $(cat "$work/health")" >&2
  exit 1
fi
echo "restored accessory $name"
