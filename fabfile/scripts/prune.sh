#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# Apply retention to the backups now, without taking one: backup.sh runs
# it after every good backup, `backup.prune` on its own (for a full disk:
# it only reads records and deletes files; it writes no file, temporary
# ones included). Runs under BACKUPS_DIR/.lock (--locked: the caller holds
# it already). Good backups go to retention.sh in the order of their
# sequence numbers (`seq`), records from before sequence numbers first, in
# the order of their ids; each with its verification (verified, unverified,
# failed). A failed or interrupted attempt older than the oldest backup kept
# goes too, and so does what a dead attempt left behind (.incoming, a dump,
# the database's or an accessory's, without a good record).
# Prints `backup ID SIZE` for each backup deleted (SIZE: its dumps' bytes,
# the accessories' included), `record ID` for each failed attempt's record
# deleted, `leftover NAME` for each leftover, then `kept N` (the backups
# left). --dry-run: the same lines, nothing deleted.
# Usage: prune.sh CONF [--locked|--dry-run]
set -eu
conf=$1 mode=${2:-}
here=$(dirname "$0")
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$here/lib_installed.sh"
backups=$(setting BACKUPS_DIR)
if [ "$mode" != --locked ]; then
  exec 9>"$backups/.lock"
  flock -w "$(setting LOCK_WAIT_SECONDS)" 9 || { echo "another backup, verify or restore holds $backups/.lock" >&2; exit 1; }
fi
delete() { [ "$mode" = --dry-run ] || rm -f "$@"; }
# Every record that parses, one JSON document a line (a half-written one is skipped).
records() {
  for record in "$backups"/*.json; do
    [ -e "$record" ] && cat "$record"
  done | jq -R -c 'fromjson? | objects'
}
order='def order: if (.seq | type) == "number" then [1, .seq, .id] else [0, 0, (.id // "")] end;
def verification: if (.verified | type) == "object" and .verified.outcome == "ok" then "verified"
  elif (.verified | type) == "object" and .verified.outcome == "failed" then "failed" else "unverified" end;
def backup_id: (.id | type) == "string" and (.id | test("^[0-9]{8}-[0-9]{6}$"));'

if [ "$mode" != --locked ]; then
  # Under the lock, what is in .incoming, or a dump without a good record, is from an attempt that died.
  for leftover in "$backups"/.incoming/*; do
    [ -e "$leftover" ] || continue
    echo "leftover .incoming/${leftover##*/}"
    delete "$leftover"
  done
  for dump in "$backups"/*.dump "$backups"/*.accessory-*; do
    [ -e "$dump" ] || continue
    jq -e '.outcome == "ok"' "${dump%.*}.json" >/dev/null 2>&1 && continue
    echo "leftover ${dump##*/}"
    delete "$dump"
    case $dump in *.dump) delete "${dump%.dump}.globals.sql" ;; esac
  done
fi

gone=$(records | jq -s -r "$order"'map(select(.outcome == "ok" and backup_id)) | sort_by(order) | .[]
  | "\(.id) \(verification)"' \
  | sh "$here/retention.sh" "$(setting KEEP_LAST)" "$(setting KEEP_DAILY)" "$(setting KEEP_WEEKLY)" "$(setting KEEP_MONTHLY)")
# Failed attempts older than the oldest good backup kept have nothing left to explain.
stale=$(records | jq -s -r --arg gone "$gone" "$order"'($gone | split("\n")) as $gone
  | (map(select(.outcome == "ok" and backup_id and ((.id | IN($gone[])) | not))) | sort_by(order) | first) as $oldest
  | if $oldest == null then empty
    else .[] | select(.outcome != "ok" and backup_id and order < ($oldest | order)) | .id end')
kept=$(records | jq -s --arg gone "$gone" '($gone | split("\n")) as $gone
  | map(select(.outcome == "ok" and ((.id | IN($gone[])) | not))) | length')
for old in $gone; do
  echo "backup $old $(jq -r '(.size // 0) + ([.accessories // {} | .[].size // 0] | add // 0)' "$backups/$old.json" 2>/dev/null || echo 0)"
  # The record first: an interrupted prune leaves files without a good record at worst (leftovers the
  # next run deletes), never a good record without its dump.
  delete "$backups/$old.json" "$backups/$old.dump" "$backups/$old.globals.sql" "$backups/$old".accessory-*
done
for old in $stale; do
  echo "record $old"
  delete "$backups/$old.json"
done
echo "kept $kept"
