#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# Prove a backup restores: its checksums, then a real pg_restore
# --exit-on-error into a throwaway PostgreSQL container (the db container's
# own image, no network), then every table's row count against the counts
# taken in the dump's snapshot; then each accessory's dump, put into a
# throwaway container of the accessory's image as a restore would put it
# (restore_accessory.sh), until the accessory's health check passes. The
# result goes into the backup's record.
# `latest` is the newest backup by sequence number (records from before
# sequence numbers by id, before any that has one) whose verify has not
# failed.
# Before anything is restored, the free space on Docker's data root (where
# the throwaway database's volume lives, beside the running database's) must
# cover the restored size times VERIFY_SPACE_PERCENT/100 plus
# VERIFY_RESERVE_MB; the restored size is the database's size when the
# backup was taken (`database_size`), or VERIFY_DUMP_EXPANSION times the
# dump for a record from before that, and the accessories' dumps.
# Exits 3 when the backup fails verification, 2 when there is no such backup,
# 5 when the space is not there (one line; nothing was restored).
# Usage: verify_backup.sh CONF ID|latest
set -eu
conf=$1 wanted=$2
here=$(dirname "$0")
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$here/lib_installed.sh"
# shellcheck source=SCRIPTDIR/lib_healthy.sh
. "$here/lib_healthy.sh"
backups=$(setting BACKUPS_DIR) db=$(setting DB_CONTAINER) user=$(setting DB_USER) name=$(setting DB_NAME)
scratch=$(setting VERIFY_CONTAINER)
work=$(mktemp -d)
clean_up() {
  docker rm -f "$scratch" >/dev/null 2>&1 || true
  for part_name in $(accessories); do docker rm -f -v "$scratch-$part_name" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap clean_up EXIT
exec 9>"$backups/.lock"
flock -w "$(setting LOCK_WAIT_SECONDS)" 9 || { echo "another backup, verify or restore holds $backups/.lock" >&2; exit 1; }

if [ "$wanted" = latest ]; then
  id=$(for record in "$backups"/*.json; do [ -e "$record" ] && cat "$record"; done | jq -R -c 'fromjson? | objects' \
    | jq -s -r 'def order: if (.seq | type) == "number" then [1, .seq, .id] else [0, 0, (.id // "")] end;
        map(select(.outcome == "ok" and ((.verified | type) != "object" or .verified.outcome != "failed")))
        | sort_by(order) | last | .id // empty')
else
  id=$wanted
fi
record=$backups/$id.json
if [ -z "$id" ] || ! jq -e '.outcome == "ok"' "$record" >/dev/null 2>&1; then
  echo "no good backup ${id:-at all} in $backups" >&2
  exit 2
fi
verdict() {
  outcome=$1 detail=$2
  # Not update_record: when jq cannot write the verdict, it is still reported (update_record would stop here).
  jq -c --arg at "$(now_iso)" --arg outcome "$outcome" --arg detail "$detail" \
    '.verified = {at: $at, outcome: $outcome, how: ("checksums, pg_restore --exit-on-error into a throwaway container, row counts"
       + if (.accessories // {}) == {} then "" else "; accessories loaded into throwaway containers, health-checked" end), detail: $detail}' \
    "$record" >"$record.tmp" && mv -f "$record.tmp" "$record"
  if [ "$outcome" = ok ]; then echo "$id $detail"; else echo "backup $id FAILED verification: $detail" >&2; exit 3; fi
}

human() {
  awk -v bytes="$1" 'BEGIN { split("B KB MB GB TB PB", unit); i = 1
    while (bytes >= 1024 && i < 6) { bytes /= 1024; i++ }
    if (i == 1) printf "%d B", bytes; else printf "%.1f %s", bytes, unit[i] }'
}
root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || true)
root=${root:-/var/lib/docker}
# Docker's volumes folder when this user may look into its data root (0710: only root may), else the data root.
where=$root/volumes
free_kb=$(df -P -k "$where" 2>/dev/null | awk 'NR == 2 { print $4 }')
if [ -z "$free_kb" ]; then
  where=$root
  free_kb=$(df -P -k "$where" | awk 'NR == 2 { print $4 }')
fi
restored=$(jq -r '.database_size | select(type == "number" and . >= 0) | floor' "$record")
basis="the database's size when it was backed up"
case $restored in
'' | *[!0-9]*)
  restored=$(( $(jq -r '.size // 0 | floor' "$record") * $(setting VERIFY_DUMP_EXPANSION) ))
  basis="$(setting VERIFY_DUMP_EXPANSION) times its dump: the record has no database size"
  ;;
esac
# The accessories' throwaway containers hold a copy of their dumps on Docker's data root too.
parts_size=$(jq -r '[.accessories // {} | .[].size | select(type == "number" and . >= 0)] | add // 0 | floor' "$record")
if [ "$parts_size" -gt 0 ]; then
  restored=$(( restored + parts_size ))
  basis="$basis, and its accessories' dumps"
fi
needed=$(( restored * $(setting VERIFY_SPACE_PERCENT) / 100 + $(setting VERIFY_RESERVE_MB) * 1048576 ))
if [ "$(( free_kb * 1024 ))" -lt "$needed" ]; then
  echo "refused to verify $id: it restores to about $(human "$restored") ($basis), so verify needs $(human "$needed") free on $where (Docker's data root, beside the running database; $(setting VERIFY_SPACE_PERCENT)% of that and $(setting VERIFY_RESERVE_MB) MB to spare), which has $(human "$(( free_kb * 1024 ))"); nothing was restored" >&2
  exit 5
fi

dump_sha=$(sha256sum "$backups/$id.dump" | cut -d' ' -f1)
[ "$dump_sha" = "$(jq -r .sha256 "$record")" ] || verdict failed "checksum mismatch: $id.dump is not the file that was written"
globals_sha=$(sha256sum "$backups/$id.globals.sql" | cut -d' ' -f1)
[ "$globals_sha" = "$(jq -r .globals_sha256 "$record")" ] || verdict failed "checksum mismatch: $id.globals.sql is not the file that was written"

image=$(docker inspect -f '{{.Image}}' "$db")
docker rm -f "$scratch" >/dev/null 2>&1 || true
# A one-off password (the container has no network, and nothing in it outlives this run), passed through
# the environment so that it never shows in a process list.
POSTGRES_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n') docker run -d --rm --name "$scratch" \
  --network none -e POSTGRES_USER="$user" -e POSTGRES_DB=postgres -e POSTGRES_PASSWORD "$image" >/dev/null
deadline=$(( $(date +%s) + $(setting VERIFY_READY_SECONDS) ))
# The entrypoint's first-run server listens on its socket only; the real one on TCP too.
until docker exec "$scratch" pg_isready -q -h 127.0.0.1 -U "$user"; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "the throwaway PostgreSQL did not start" >&2; exit 1; }
  sleep 0.5
done
[ "$name" = postgres ] || docker exec "$scratch" createdb -U "$user" -T template0 "$name"
docker exec -i "$scratch" psql -X -q -U "$user" -d postgres <"$backups/$id.globals.sql" >/dev/null 2>&1 || true
if ! docker exec -i "$scratch" pg_restore --exit-on-error -U "$user" -d "$name" <"$backups/$id.dump" 2>"$work/restore.err"; then
  verdict failed "pg_restore: $(grep -v '^$' "$work/restore.err" | tail -n 2 | tr '\n' ' ')"
fi
docker exec -i "$scratch" psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$user" -d "$name" <"$here/count_rows.sql" >"$work/counts.json"
differences=$(jq -r --slurpfile restored "$work/counts.json" \
  '.tables as $taken | ($taken + $restored[0]) | keys[] | select($taken[.] != $restored[0][.])
   | "\(.): \($taken[.] // "absent") at backup, \($restored[0][.] // "absent") restored"' "$record" | head -n 5 | tr '\n' ';')
[ -z "$differences" ] || verdict failed "row counts differ: $differences"
docker rm -f "$scratch" >/dev/null 2>&1 || true

# Each accessory's dump, into a throwaway container as restore_accessory.sh puts it into the accessory's own.
loaded=""
for part_name in $(jq -r '.accessories // {} | keys[]' "$record"); do
  part=$backups/$id.accessory-$part_name
  [ "$(sha256sum "$part" 2>/dev/null | cut -d' ' -f1)" = "$(jq -r --arg name "$part_name" '.accessories[$name].sha256' "$record")" ] \
    || verdict failed "checksum mismatch: ${part##*/} is not the file that was written"
  if [ -z "$(accessory "$part_name" .name)" ]; then
    loaded="$loaded; accessory $part_name not loaded (it has no backup in the inventory now)"
    continue
  fi
  box=$scratch-$part_name
  docker rm -f -v "$box" >/dev/null 2>&1 || true
  with_words "$part_name" '.scratch + [.image] + .command' docker create --name "$box" >/dev/null 2>"$work/box.err" \
    || verdict failed "accessory $part_name: its throwaway container could not be made: $(tail -n 1 "$work/box.err")"
  health="$box||$(accessory "$part_name" .health_port)|$(accessory "$part_name" .health_path)"
  seconds=$(accessory "$part_name" .health_seconds)
  if [ "$(accessory "$part_name" '.restore | length')" = 0 ]; then
    copy_dump "$part" "$box" "$(accessory "$part_name" .file)" 2>"$work/box.err" \
      || verdict failed "accessory $part_name: docker cp of its dump failed: $(tail -n 1 "$work/box.err")"
  fi
  docker start "$box" >/dev/null 2>"$work/box.err" \
    || verdict failed "accessory $part_name: its throwaway container did not start: $(tail -n 1 "$work/box.err")"
  if [ "$(accessory "$part_name" '.restore | length')" != 0 ]; then
    wait_healthy "$seconds" "$(setting UNHEALTHY_EXIT)" "$health" >"$work/health" \
      || verdict failed "accessory $part_name: its throwaway container never got healthy before the restore: $(cat "$work/health")"
    with_words "$part_name" .restore docker exec -i "$box" <"$part" >/dev/null 2>"$work/box.err" \
      || verdict failed "accessory $part_name: its restore command failed: $(grep -v '^$' "$work/box.err" | tail -n 1)"
  fi
  wait_healthy "$seconds" "$(setting UNHEALTHY_EXIT)" "$health" >"$work/health" \
    || verdict failed "accessory $part_name: never healthy with its dump loaded: $(cat "$work/health")$(docker logs --tail 2 "$box" 2>&1 | tr '\n' ' ')"
  docker rm -f -v "$box" >/dev/null 2>&1 || true
  loaded="$loaded; accessory $part_name loaded and healthy"
done
verdict ok "$(jq -r '"\(.tables | length) tables, \([.tables[]] | add // 0) rows match"' "$record")$loaded"
