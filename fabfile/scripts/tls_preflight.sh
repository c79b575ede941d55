#!/bin/sh
# Before asking an ACME CA: does each domain reach this server's challenge
# path through its public name? A random file goes into the webroot, each
# domain must serve it back over HTTP; one line per domain that does not.
# Nothing is retried: a CA counts failed validations against the domain.
# Usage: tls_preflight.sh WEBROOT FAILED_EXIT DOMAIN...
set -eu
webroot=$1 failed_exit=$2
shift 2
dir=$webroot/.well-known/acme-challenge
mkdir -p "$dir"
token=slipway-preflight-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$token" > "$dir/$token"
chmod 644 "$dir/$token"
trap 'rm -f "$dir/$token"' EXIT
failed=0
for domain in "$@"; do
  addresses=$(getent ahostsv4 "$domain" | awk '{print $1}' | sort -u | tr '\n' ' ' | sed 's/ $//') || true
  if [ -z "$addresses" ]; then
    echo "$domain does not resolve (no A record seen from the server): point its DNS at this server"
    failed=1
    continue
  fi
  if ! answer=$(curl -sS --max-time 10 --noproxy '*' "http://$domain/.well-known/acme-challenge/$token" 2>&1); then
    echo "$domain ($addresses) is unreachable on port 80 from the server: ${answer##*: }"
    failed=1
  elif [ "$answer" != "$token" ]; then
    echo "$domain ($addresses) answers on port 80, but not with this server's challenge file (does its DNS point at another server?)"
    failed=1
  fi
done
[ "$failed" = 0 ] || exit "$failed_exit"
