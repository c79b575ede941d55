#!/bin/sh
# `tls.renew`: certbot renew for the app's certificate only (FORCE 1: even
# when it is not due), with the deploy hook that tests and reloads nginx;
# the outcome is recorded as the scheduled run's is. Run as root.
# Usage: tls_renew.sh CONF FORCE
set -eu
conf=$1 force=$2
here=$(dirname "$0")
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$here/lib_installed.sh"
name=$(setting CERT_NAME) ca_bundle=$(setting CA_BUNDLE)
set -- certbot renew --cert-name "$name" --no-random-sleep-on-renew --non-interactive
[ "$force" = 1 ] && set -- "$@" --force-renewal
status=0
if [ -n "$ca_bundle" ]; then
  REQUESTS_CA_BUNDLE=$ca_bundle "$@" || status=$?
else
  "$@" || status=$?
fi
sh "$here/tls_renew_result.sh" "$conf" "$status"
exit "$status"
