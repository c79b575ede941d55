#!/bin/sh
# Make ZONE the server's time zone: /etc/localtime links to ZONE_FILE (its
# file under /usr/share/zoneinfo) and /etc/timezone names it. Exits 1, having
# changed nothing, when there is no such file.
# Usage: timezone.sh ZONE_FILE ZONE
set -eu
file=$1 zone=$2
if [ ! -f "$file" ]; then
  printf 'no such time zone: %s\n' "$zone" >&2
  exit 1
fi
ln -sfn "$file" /etc/localtime
printf '%s\n' "$zone" > /etc/timezone
