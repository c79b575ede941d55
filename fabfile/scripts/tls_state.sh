#!/bin/sh
# The certificate of one certbot lineage, as JSON on one line ({} when there
# is none): its names, serial, issuer and validity (epoch seconds). Run as
# root: /etc/letsencrypt/live is root's. A certificate file of the user's own
# can be read the same way. openssl reads the certificate once (status runs
# this on every call).
# Usage: tls_state.sh CERT_FILE
set -eu
cert=$1
if [ ! -e "$cert" ]; then echo '{}'; exit 0; fi
fields=$(openssl x509 -in "$cert" -noout -serial -issuer -nameopt RFC2253 -startdate -enddate -ext subjectAltName)
field() { printf '%s\n' "$fields" | sed -n "s/^$1=//p"; }
# The extension's values are its indented lines; every other field starts its line with its name.
names=$(printf '%s\n' "$fields" | sed -n 's/^ \{1,\}//p' | tr ',' '\n' | sed -n 's/^ *DNS://p')
not_before=$(date -d "$(field notBefore)" +%s)
not_after=$(date -d "$(field notAfter)" +%s)
printf '%s\n' "$names" | jq -R -s -c --arg serial "$(field serial)" --arg issuer "$(field issuer)" \
  --argjson not_before "$not_before" --argjson not_after "$not_after" \
  '{domains: (split("\n") | map(select(length > 0))), serial: $serial, issuer: $issuer,
    not_before: $not_before, not_after: $not_after}'
