#!/bin/sh
# The certificate of one certbot lineage, as JSON on one line ({} when there
# is none): its names, serial, issuer and validity (epoch seconds). Run as
# root: /etc/letsencrypt/live is root's. A certificate file of the user's own
# can be read the same way.
# Usage: tls_state.sh CERT_FILE
set -eu
cert=$1
if [ ! -e "$cert" ]; then echo '{}'; exit 0; fi
field() { openssl x509 -in "$cert" -noout "$@"; }
names=$(field -ext subjectAltName | tr ',' '\n' | sed -n 's/^ *DNS://p')
serial=$(field -serial | cut -d= -f2)
issuer=$(field -issuer -nameopt RFC2253 | sed 's/^issuer=//')
not_before=$(date -d "$(field -startdate | cut -d= -f2)" +%s)
not_after=$(date -d "$(field -enddate | cut -d= -f2)" +%s)
printf '%s\n' "$names" | jq -R -s -c --arg serial "$serial" --arg issuer "$issuer" \
  --argjson not_before "$not_before" --argjson not_after "$not_after" \
  '{domains: (split("\n") | map(select(length > 0))), serial: $serial, issuer: $issuer,
    not_before: $not_before, not_after: $not_after}'
