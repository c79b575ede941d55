#!/bin/sh
# Maintenance on or off, by files nginx checks per request (no reload).
# on: RECORD (JSON) goes to maintenance.json, the page (stdin) to
# maintenance.html, which nginx serves as the 503 for every request while it
# exists; each ADDRESS gets a file in allow/, and its requests go through.
# The allow-list is in place before the page, so an allowed client never
# sees it. off: the page goes first, then the rest.
# Usage: maintenance.sh TRAFFIC_DIR on RECORD [ADDRESS]...
#        maintenance.sh TRAFFIC_DIR off
set -eu
dir=$1 action=$2
page=$dir/maintenance.html record=$dir/maintenance.json allow=$dir/allow
if [ "$action" = off ]; then
  rm -f "$page" "$record"
  rm -rf "$allow"
  exit 0
fi
json=$3
shift 3
mkdir -p "$allow"
for existing in "$allow"/*; do
  [ -e "$existing" ] || continue
  keep=0
  for address in "$@"; do [ "${existing##*/}" = "$address" ] && keep=1; done
  [ "$keep" = 1 ] || rm -f "$existing"
done
for address in "$@"; do : > "$allow/$address"; done
printf '%s\n' "$json" > "$record.new" && mv -f "$record.new" "$record"
cat > "$page.new"
chmod 644 "$page.new" "$record"
mv -f "$page.new" "$page"
