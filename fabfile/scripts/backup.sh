#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# Take one backup of the app's database, and of the accessories that have a
# backup command (ACCESSORIES). The scheduled run (systemd) and
# `backup` both run this file, as the deploy user.
#
# A read-only transaction exports its snapshot; pg_dump -Fc dumps exactly
# that snapshot while the same transaction counts every table's rows, so the
# counts recorded beside the dump are the dump's own. The dump streams into
# BACKUPS_DIR/.incoming (same filesystem), is checksummed on the way, fsynced
# and renamed into place with the roles (pg_dumpall --globals-only) and a
# JSON record. The record says `ok` last: a failed or interrupted attempt
# leaves only a record saying so, never a file that looks like a backup.
# Each attempt's record gets the next sequence number (`seq`: one more than
# BACKUPS_DIR/.sequence and than any record's, written under the lock), which
# orders backups where the server's clock, and so the id, may not; and the
# database's size at dump time (`database_size`, what verify must find room
# for). After a good backup, prune.sh applies retention.
# With an offsite repository, the new backup is copied there last (still
# under the lock); if that fails, the backup stays good and in place and the
# script exits OFFSITE_FAILED_EXIT.
# Prints `ID SIZE SHA256 SECONDS` of the new backup.
# Usage: backup.sh CONF TRIGGER
set -eu
conf=$1 trigger=$2
here=$(dirname "$0")
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$here/lib_installed.sh"
backups=$(setting BACKUPS_DIR) db=$(setting DB_CONTAINER) user=$(setting DB_USER) name=$(setting DB_NAME)
umask 077
incoming=$backups/.incoming
work=$(mktemp -d)
id="" finished=0 session=""

# healthchecks.io style: URL/start, URL on success, URL/EXIT-CODE on failure. The URL carries a
# token, so curl reads it from stdin, never from its command line. A ping never fails the backup.
notify_monitor() {
  url=$(sed -n 's/^PING_URL=//p' "$(setting SECRETS_FILE)" 2>/dev/null | tail -n 1)
  [ -n "$url" ] || return 0
  printf 'url = "%s%s"\n' "$(printf '%s' "$url" | sed 's/[\\"]/\\&/g')" "$1" \
    | curl -fsS -m 10 --retry 2 -o /dev/null -K - 2>/dev/null || true
}
finish() {
  status=$?
  exec 3>&- 4<&-
  [ -z "$session" ] || kill "$session" 2>/dev/null || true
  if [ "$finished" = 0 ] && [ -n "$id" ]; then
    rm -f "$incoming/$id".* "$backups/$id.dump" "$backups/$id.globals.sql" "$backups/$id.json.tmp" \
      "$backups/$id".accessory-*
    reason=$(cat "$work"/*.err 2>/dev/null | grep -v '^$' | tail -n 3 | tr '\n' ' ')
    update_record "$backups/$id.json" --arg error "${reason:-exit $status}" --arg ended "$(now_iso)" \
      '.outcome = "failed" | .error = $error | .ended = $ended' || true
    echo "backup $id failed: ${reason:-exit $status}" >&2
  fi
  rm -rf "$work"
  [ "$status" != 0 ] || [ "$finished" = 1 ] || status=1
  if [ "$status" = 0 ]; then notify_monitor ""; else notify_monitor "/$status"; fi
  exit "$status"
}
trap finish EXIT
trap 'exit 143' TERM INT HUP

notify_monitor /start
mkdir -p "$incoming"
exec 9>"$backups/.lock"
if ! flock -w "$(setting LOCK_WAIT_SECONDS)" 9; then
  echo "another backup, verify or restore held $backups/.lock for $(setting LOCK_WAIT_SECONDS)s" >&2
  exit 1
fi
# Under the lock, whatever another attempt left in .incoming or as `running` is from one that died.
find "$incoming" -mindepth 1 -delete
for record in "$backups"/*.json; do
  [ -e "$record" ] || continue
  if jq -e '.outcome == "running"' "$record" >/dev/null 2>&1; then
    update_record "$record" '.outcome = "interrupted" | .error = "the run ended before it finished"'
  fi
done
for dump in "$backups"/*.dump "$backups"/*.accessory-*; do
  [ -e "$dump" ] || continue
  jq -e '.outcome == "ok"' "${dump%.*}.json" >/dev/null 2>&1 || rm -f "$dump" "${dump%.dump}.globals.sql"
done

# The sequence number: after the counter and after every record (records fetched from offsite included).
counted=$(cat "$backups/.sequence" 2>/dev/null || true)
case $counted in '' | *[!0-9]*) counted=0 ;; esac
recorded=$(for record in "$backups"/*.json; do [ -e "$record" ] && cat "$record"; done \
  | jq -R 'fromjson? | objects | .seq | select(type == "number" and . >= 0 and . == floor)' | sort -n | tail -n 1)
recorded=${recorded:-0}
seq=$(( (recorded > counted ? recorded : counted) + 1 ))
printf '%s\n' "$seq" >"$backups/.sequence.tmp"
mv -f "$backups/.sequence.tmp" "$backups/.sequence"

id=$(date -u +%Y%m%d-%H%M%S)
while [ -e "$backups/$id.json" ]; do sleep 1; id=$(date -u +%Y%m%d-%H%M%S); done
began=$(date +%s)
write_record "$backups/$id.json" -n --arg id "$id" --argjson seq "$seq" --arg time "$(now_iso)" --arg trigger "$trigger" \
  '{id: $id, seq: $seq, time: $time, trigger: $trigger, outcome: "running"}'

mkfifo "$work/to_psql" "$work/from_psql"
docker exec -i "$db" psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$user" -d "$name" \
  <"$work/to_psql" >"$work/from_psql" 2>"$work/psql.err" &
session=$!
exec 3>"$work/to_psql" 4<"$work/from_psql"
cat >&3 <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT pg_export_snapshot() || '|' || current_setting('server_version') || '|' || pg_database_size(current_database());
SQL
IFS='|' read -r snapshot version database_size <&4 || { echo "no snapshot from the database" >"$work/snapshot.err"; exit 1; }
case $database_size in '' | *[!0-9]*) database_size=null ;; esac
# zstd (PostgreSQL 16 and later) dumps about 2.5 times as fast as -Fc's default gzip, and smaller;
# pg_restore reads either without being told.
# (Before 16, --compress takes only a gzip level: the option stays out.)
compression=gzip compress_option=
if [ "${version%%.*}" -ge 16 ] 2>/dev/null; then compression=zstd compress_option=--compress=zstd; fi

(
  rc=0
  # shellcheck disable=SC2086  # an option or nothing
  docker exec "$db" pg_dump -Fc $compress_option --snapshot="$snapshot" -U "$user" -d "$name" \
    2>"$work/pg_dump.err" || rc=$?
  echo "$rc" >"$work/pg_dump.rc"
) | (
  rc=0
  tee "$incoming/$id.dump" 2>"$work/write.err" || rc=$?
  echo "$rc" >"$work/write.rc"
) | sha256sum >"$work/dump.sha256" &
dump=$!
# The roles are not in any snapshot: dumped beside the data, not after it.
docker exec "$db" pg_dumpall --globals-only -U "$user" >"$incoming/$id.globals.sql" 2>"$work/globals.err" &
globals=$!
# Counted inside the exported snapshot's transaction while pg_dump reads the same snapshot.
cat "$here/count_rows.sql" >&3
read -r tables <&4 || { echo "the row counts could not be read" >"$work/counts.err"; exit 1; }
wait "$dump"
[ "$(cat "$work/pg_dump.rc")" = 0 ] || exit 1
[ "$(cat "$work/write.rc")" = 0 ] || exit 1
printf 'COMMIT;\n' >&3
exec 3>&-
wait "$session" || exit 1
session=""

wait "$globals" || exit 1

# Each accessory with a backup: its command, run in its container, writes a dump to stdout, into .incoming and
# checksummed on the way. A backup missing a part is no backup: it fails as a whole. An accessory without a
# container (removed, or not started yet: the next deploy starts it) is skipped, and the record says so.
parts='{}' skipped='[]'
for part_name in $(accessories); do
  container=$(accessory "$part_name" .container) part=$id.accessory-$part_name part_began=$(date +%s)
  if ! docker container inspect "$container" >/dev/null 2>&1; then
    skipped=$(printf '%s' "$skipped" | jq -c --arg name "$part_name" '. + [$name]')
    echo "accessory $part_name skipped: it has no container $container (the next deploy starts it)" >&2
    continue
  fi
  (
    rc=0
    (
      rc=0
      with_words "$part_name" .backup docker exec "$container" 2>"$work/part.err" || rc=$?
      echo "$rc" >"$work/part.rc"
    ) | tee "$incoming/$part" 2>"$work/part-write.err" || rc=$?
    echo "$rc" >"$work/part-write.rc"
  ) | sha256sum >"$work/part.sha256"
  if [ "$(cat "$work/part.rc")" != 0 ] || [ "$(cat "$work/part-write.rc")" != 0 ] || [ ! -s "$incoming/$part" ]; then
    why=$(cat "$work/part.err" "$work/part-write.err" | grep -v '^$' | tail -n 2 | tr '\n' ' ')
    rm -f "$work"/*.err
    echo "accessory $part_name: its backup command in $container failed: ${why:-it wrote nothing}" >"$work/part.err"
    exit 1
  fi
  sync "$incoming/$part" 2>"$work/sync.err"
  parts=$(printf '%s' "$parts" | jq -c --arg name "$part_name" --arg file "$part" \
    --arg sha256 "$(cut -d' ' -f1 "$work/part.sha256")" --argjson size "$(stat -c %s "$incoming/$part")" \
    --argjson seconds "$(( $(date +%s) - part_began ))" \
    '.[$name] = {file: $file, sha256: $sha256, size: $size, seconds: $seconds}')
  mv -f "$incoming/$part" "$backups/"
done

sync "$incoming/$id.dump" "$incoming/$id.globals.sql" 2>"$work/sync.err"
sha256=$(cut -d' ' -f1 "$work/dump.sha256")
size=$(stat -c %s "$incoming/$id.dump")
mv -f "$incoming/$id.dump" "$incoming/$id.globals.sql" "$backups/"
update_record "$backups/$id.json" --arg sha256 "$sha256" --argjson size "$size" --arg version "$version" \
  --argjson tables "$tables" --argjson seconds "$(( $(date +%s) - began ))" --arg ended "$(now_iso)" \
  --arg compression "$compression" --argjson database_size "$database_size" --argjson parts "$parts" --argjson skipped "$skipped" \
  --arg globals_sha256 "$(sha256sum "$backups/$id.globals.sql" | cut -d' ' -f1)" \
  '.outcome = "ok" | .ended = $ended | .size = $size | .sha256 = $sha256 | .globals_sha256 = $globals_sha256
   | .postgres_version = $version | .compression = $compression | .seconds = $seconds | .tables = $tables
   | .database_size = $database_size | if $parts == {} then . else .accessories = $parts end
   | if $skipped == [] then . else .accessories_skipped = $skipped end
   | .verified = null | .offsite = false' 2>"$work/record.err"
sync "$backups" 2>/dev/null || true
finished=1
echo "$id $size $sha256 $(( $(date +%s) - began ))"

# Retention: only now that a new good backup is in place (still under the lock). The backup is good
# whatever retention does.
sh "$here/prune.sh" "$conf" --locked >/dev/null || echo "backup $id is good; retention after it failed" >&2
if [ -n "$(setting OFFSITE_REPOSITORY)" ]; then
  sh "$here/offsite.sh" "$conf" upload "$id" >/dev/null || exit "$(setting OFFSITE_FAILED_EXIT)"
fi
