#!/bin/sh
# One certificate for all the app's domains from the ACME CA, by HTTP-01
# through the webroot nginx serves (certbot on the host). The lineage keeps
# its name when domains are added or removed, so nginx's paths never change.
# Run as root, once: a failed issuance is not retried here.
# Usage: tls_issue.sh CONF EMAIL DOMAIN...   (EMAIL may be empty)
set -eu
conf=$1 email=$2
shift 2
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$(dirname "$0")/lib_installed.sh"
name=$(setting CERT_NAME) webroot=$(setting WEBROOT) server=$(setting ACME_SERVER) ca_bundle=$(setting CA_BUNDLE)
domains=
for domain in "$@"; do domains="$domains${domains:+,}$domain"; done
set -- certbot certonly --webroot -w "$webroot" --cert-name "$name" -d "$domains" --server "$server" \
  --non-interactive --agree-tos --keep-until-expiring --expand
if [ -n "$email" ]; then set -- "$@" --email "$email"; else set -- "$@" --register-unsafely-without-email; fi
if [ -n "$ca_bundle" ]; then
  REQUESTS_CA_BUNDLE=$ca_bundle exec "$@"
fi
exec "$@"
