#!/bin/sh
# Grandfather-father-son retention over good backups read from stdin, one
# `ID STATE` a line, oldest first in the order of their sequence numbers
# (not of their ids: an id is the server's clock, which can step back).
# STATE is verified, unverified or failed (its verify failed); a line
# without one is unverified. Prints the ids to delete, oldest first.
# Kept: the newest backup; the newest verified one; the newest KEEP_LAST
# good ones; the newest of each of the KEEP_DAILY most recent days that
# have a good backup (the day in its id); the same for ISO weeks
# (KEEP_WEEKLY) and months (KEEP_MONTHLY). A backup whose verify failed
# fills none of these: it is kept only while it is among the KEEP_LAST
# newest lines, so it is never the only one kept. Failed attempts are never
# fed in.
# Usage: retention.sh KEEP_LAST KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY < lines
set -eu
keep_last=$1 keep_daily=$2 keep_weekly=$3 keep_monthly=$4
grep -E '^[0-9]{8}-[0-9]{6}( (verified|unverified|failed))?$' | while read -r id state; do
  day=${id%-*}
  printf '%s %s %s %s %s\n' "$id" "${state:-unverified}" "$day" "$(date -u -d "$day" +%G%V)" "${day%??}"
done | awk -v last="$keep_last" -v daily="$keep_daily" -v weekly="$keep_weekly" -v monthly="$keep_monthly" '
  !($1 in seen) { seen[$1] = 1; n++; id[n] = $1; state[n] = $2; day[n] = $3; week[n] = $4; month[n] = $5 }
  END {
    for (i = n; i >= 1; i--) {
      position = n - i + 1
      keep = position == 1
      if (state[i] == "failed") {
        if (position <= last) keep = 1
      } else {
        good++
        if (good <= last) keep = 1
        if (state[i] == "verified" && !verified) { verified = 1; keep = 1 }
        if (!(day[i] in days) && n_days < daily) { days[day[i]] = 1; n_days++; keep = 1 }
        if (!(week[i] in weeks) && n_weeks < weekly) { weeks[week[i]] = 1; n_weeks++; keep = 1 }
        if (!(month[i] in months) && n_months < monthly) { months[month[i]] = 1; n_months++; keep = 1 }
      }
      if (!keep) gone[i] = 1
    }
    for (i = 1; i <= n; i++) if (i in gone) print id[i]
  }'
