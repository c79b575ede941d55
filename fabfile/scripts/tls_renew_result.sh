#!/bin/sh
# Records the outcome of the last `certbot renew` in the app's TLS record:
# run by certbot.service (ExecStopPost, which sets SERVICE_RESULT and
# EXIT_STATUS) after every scheduled run, and by `tls.renew`.
# Usage: tls_renew_result.sh CONF [EXIT_STATUS]
set -eu
conf=$1
setting() { sed -n "s/^$1=//p" "$conf" | tail -n 1; }
record=$(setting RECORD)
exit_status=${2:-${EXIT_STATUS:-}}
if [ -n "${2:-}" ]; then
  result=$([ "$2" = 0 ] && echo success || echo exit-code)
else
  result=${SERVICE_RESULT:-unknown}
fi
tmp=$(mktemp "$record.XXXXXX")
{ cat "$record" 2>/dev/null || echo '{}'; } | jq -c --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg result "$result" --arg exit_status "$exit_status" \
  '.checked = {at: $at, ok: ($result == "success"), result: $result, exit_status: $exit_status}' > "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$record"
