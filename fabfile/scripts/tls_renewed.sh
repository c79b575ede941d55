#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# certbot's deploy hook for one app (run by `certbot renew` as root after a
# certificate of any lineage was renewed; RENEWED_LINEAGE says which): when
# it is the app's, test nginx's config in its container and reload nginx only
# if the test passes. Either way the outcome goes into the app's TLS record.
# Usage: tls_renewed.sh CONF
set -eu
conf=$1
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$(dirname "$0")/lib_installed.sh"
lineage=$(setting LINEAGE) container=$(setting NGINX_CONTAINER) record=$(setting RECORD)
[ "${RENEWED_LINEAGE:-}" = "$lineage" ] || exit 0
serial=$(openssl x509 -in "$lineage/cert.pem" -noout -serial | cut -d= -f2)
status=0
if ! running=$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null) || [ "$running" != true ]; then
  outcome="renewed; nginx is not running, so nothing to reload"
elif tested=$(docker exec "$container" nginx -t -q 2>&1); then
  docker exec "$container" nginx -s reload
  outcome="renewed; nginx reloaded"
else
  outcome="renewed, but nginx -t failed, so nginx was not reloaded: $(printf '%s' "$tested" | tail -n 1)"
  status=1
fi
merge_into_record "$record" --arg serial "$serial" --arg outcome "$outcome" \
  '.renewed = {at: $at, serial: $serial, outcome: $outcome}'
[ "$status" = 0 ] || echo "slipway: $outcome" >&2
exit "$status"
