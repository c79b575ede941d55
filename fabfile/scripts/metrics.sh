#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# The backups as Prometheus metrics for node_exporter's textfile collector,
# computed from the records and written atomically (a temporary file in the
# same folder, renamed), only where that folder exists. Run as root: by the
# backup service after every scheduled run, and by slipway after `backup`.
# Usage: metrics.sh CONF
set -eu
conf=$1
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$(dirname "$0")/lib_installed.sh"
dir=$(setting METRICS_DIR) backups=$(setting BACKUPS_DIR) app=$(setting APP)
[ -d "$dir" ] || exit 0
tmp=$(mktemp "$dir/.slipway_backup_$app.XXXXXX")
trap 'rm -f "$tmp"' EXIT
for record in "$backups"/*.json; do
  [ -e "$record" ] && cat "$record"
done | jq -s -r --arg app "$app" '
  def at(time): if time then (time | fromdateiso8601) else 0 end;
  def metric(name; help; value):
    "# HELP slipway_backup_\(name) \(help)\n# TYPE slipway_backup_\(name) gauge\nslipway_backup_\(name){app=\"\($app)\"} \(value)";
  def copied: (.offsite | type) == "object" and (.offsite.snapshot // "") != "";
  (map(select(.outcome == "ok")) | sort_by(.id)) as $good
  | (map(select(.outcome != "running")) | sort_by(.id) | last) as $last
  | (map(select(copied)) | sort_by(.id) | last) as $offsite
  | [metric("last_success_timestamp_seconds"; "When the newest good backup ended (0: none)."; at($good | last | .ended)),
     metric("last_size_bytes"; "Size of the newest good backup'"'"'s dump."; ($good | last | .size) // 0),
     metric("last_duration_seconds"; "How long the newest good backup took."; ($good | last | .seconds) // 0),
     metric("last_run_ok"; "1 when the last attempt (its offsite copy included) succeeded.";
            if $last and $last.outcome == "ok" and (($last.offsite | type) != "object" or ($last.offsite.error == null)) then 1 else 0 end),
     metric("good_count"; "Good backups kept on the server."; $good | length),
     metric("offsite_last_success_timestamp_seconds"; "When the newest offsite copy was made (0: none)."; at($offsite.offsite.at))]
  | join("\n")' > "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$dir/slipway_backup_$app.prom"
