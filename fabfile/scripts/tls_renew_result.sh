#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# Records the outcome of the last `certbot renew` in the app's TLS record:
# run by certbot.service (ExecStopPost, which sets SERVICE_RESULT and
# EXIT_STATUS) after every scheduled run, and by `tls.renew`.
# Usage: tls_renew_result.sh CONF [EXIT_STATUS]
set -eu
conf=$1
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$(dirname "$0")/lib_installed.sh"
record=$(setting RECORD)
exit_status=${2:-${EXIT_STATUS:-}}
if [ -n "${2:-}" ]; then
  result=$([ "$2" = 0 ] && echo success || echo exit-code)
else
  result=${SERVICE_RESULT:-unknown}
fi
merge_into_record "$record" --arg result "$result" --arg exit_status "$exit_status" \
  '.checked = {at: $at, ok: ($result == "success"), result: $result, exit_status: $exit_status}'
