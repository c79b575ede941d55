#!/bin/sh
# Grandfather-father-son retention over good backup ids (YYYYMMDD-HHMMSS, UTC)
# read from stdin; prints the ids to delete, oldest first. Kept: the newest
# KEEP_LAST; the newest of each of the KEEP_DAILY most recent days that have
# a backup; the same for ISO weeks (KEEP_WEEKLY) and months (KEEP_MONTHLY).
# The newest backup is always kept. Only good backups may be fed in: failed
# attempts never count.
# Usage: retention.sh KEEP_LAST KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY < ids
set -eu
keep_last=$1 keep_daily=$2 keep_weekly=$3 keep_monthly=$4
grep -E '^[0-9]{8}-[0-9]{6}$' | sort -ru | while read -r id; do
  day=${id%-*}
  printf '%s %s %s %s\n' "$id" "$day" "$(date -u -d "$day" +%G%V)" "${day%??}"
done | awk -v last="$keep_last" -v daily="$keep_daily" -v weekly="$keep_weekly" -v monthly="$keep_monthly" '
  {
    keep = NR == 1 || NR <= last
    if (!($2 in days) && n_days < daily) { days[$2] = 1; n_days++; keep = 1 }
    if (!($3 in weeks) && n_weeks < weekly) { weeks[$3] = 1; n_weeks++; keep = 1 }
    if (!($4 in months) && n_months < monthly) { months[$4] = 1; n_months++; keep = 1 }
    if (!keep) print $1
  }' | sort
