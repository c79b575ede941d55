#!/bin/sh
# shellcheck disable=SC2016  # the single-quoted $names are jq's, not the shell's
# The offsite copy of the backups: an encrypted restic repository, over SFTP
# to a second host (the server's own key, the host's key pinned), in an S3
# store or on a REST server (restic's rest-server; its certificate checked
# against OFFSITE_CACERT when set). Runs as the deploy user. The repository's
# password and keys, and a REST repository's location with its credentials,
# come from a 0600 file read with sed into restic's environment: never on a
# command line, so never in a process list.
#
# Snapshots are restic's --host OFFSITE_HOST (slipway-APP) with the tags
# slipway, backup-ID and OFFSITE_TAG (inventory-NAME), so inventories that
# share a repository and an app name (staging, production) keep apart:
# retention forgets only snapshots with this inventory's tag, and fetch
# reads this inventory's snapshots, or, when it has none that match,
# snapshots from before inventory tags (no inventory-* tag at all); never
# another inventory's. Without OFFSITE_TAG, every snapshot of the host.
#
#   upload ID     copy backup ID (dumps, roles, record) and apply the local
#                 retention there (forget --prune); backup.sh runs it under
#                 its lock after each good backup. With OFFSITE_APPEND_ONLY
#                 the server never forgets there (its credentials may only
#                 add): the record says so, and backup.prune-offsite applies
#                 the retention from the operator's machine
#   check         restic check --read-data-subset, result in .offsite-check.json
#   snapshots     the snapshots fetch may read, as restic's JSON
#   fetch ID|latest  bring a backup back from the repository into the backups
#                 folder (checksum checked); prints its id. latest: the
#                 newest backup id (this inventory's, else from before tags)
# Exits 2 when fetch finds no such backup.
# Usage: offsite.sh CONF ACTION [ID]
set -eu
conf=$1 action=$2 ID=${3:-}
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$(dirname "$0")/lib_installed.sh"
secret() { sed -n "s/^$1=//p" "$(setting SECRETS_FILE)" | tail -n 1; }
backups=$(setting BACKUPS_DIR) host=$(setting OFFSITE_HOST) tag=$(setting OFFSITE_TAG)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A REST repository's location holds its credentials: the secrets file has it; the others are in the conf.
RESTIC_REPOSITORY=$(secret RESTIC_REPOSITORY)
[ -n "$RESTIC_REPOSITORY" ] || RESTIC_REPOSITORY=$(setting OFFSITE_REPOSITORY)
RESTIC_PASSWORD=$(secret RESTIC_PASSWORD)
export RESTIC_REPOSITORY RESTIC_PASSWORD
if [ -n "$(secret AWS_ACCESS_KEY_ID)" ]; then
  AWS_ACCESS_KEY_ID=$(secret AWS_ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=$(secret AWS_SECRET_ACCESS_KEY)
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
fi
ssh_target=$(setting OFFSITE_SSH)
if [ -n "$ssh_target" ]; then
  # restic splits sftp.command on spaces itself (no shell); every part is a validated name or path.
  set -- -o "sftp.command=ssh -i $(setting OFFSITE_SSH_KEY) -p $(setting OFFSITE_SSH_PORT) -o IdentitiesOnly=yes \
-o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$(setting OFFSITE_KNOWN_HOSTS) \
-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 \
$ssh_target -s sftp"
else
  set --
fi
cacert=$(setting OFFSITE_CACERT)
if [ -n "$cacert" ]; then
  set -- "$@" --cacert "$cacert"
fi

# The last N lines restic (or ssh) wrote, as one line, any URL's credentials masked (restic masks those of
# the repository's location itself).
last_words() {
  grep -v '^[[:space:]]*$' "$log" | tail -n "$1" | tr '\n' ' ' | sed -e 's#://[^/@[:space:]]*@#://***@#g' -e 's/ *$//'
}
# One line for the operator: what failed and the last words of restic (or ssh) about it.
fail() {
  echo "offsite $1 failed: $(last_words 2 | cut -c1-400)" >&2
  exit 1
}
lock() {
  exec 9>"$backups/.lock"
  flock -w "$(setting LOCK_WAIT_SECONDS)" 9 || { echo "another backup, verify or restore holds $backups/.lock" >&2; exit 1; }
}
# What this inventory reads of the host's snapshots (restic's JSON on stdin): its own (tag $tag) and
# those from before inventory tags. preferred: of those, its own when there are any, else the others.
readable='def readable($tag): if $tag == "" then . else map(select((.tags // []) as $tags
    | ($tags | index([$tag])) or ($tags | map(startswith("inventory-")) | any | not))) end;
  def preferred($tag): readable($tag) | (map(select((.tags // []) | index([$tag])))) as $own
    | if $tag == "" or ($own | length) == 0 then . else $own end;'
# The host's snapshots as restic's JSON (restic's options follow).
snapshots() {
  restic "$@" snapshots --json --host "$host" --tag slipway 2>"$log"
}
# The newest snapshot of backup $1 this inventory reads (restic's options follow).
newest_snapshot() {
  wanted=$1
  shift
  listed=$(snapshots "$@") || return 1
  printf '%s\n' "$listed" | jq -r --arg tag "$tag" --arg wanted "backup-$wanted" "$readable"'
    map(select((.tags // []) | index([$wanted]))) | preferred($tag) | sort_by(.time) | last | .id // empty'
}

case $action in
upload)
  record=$backups/$ID.json
  if ! restic "$@" cat config >/dev/null 2>"$log"; then
    if grep -q 'Is there a repository at the following location' "$log"; then
      restic "$@" init >/dev/null 2>"$log" || { update_record "$record" --arg at "$(now_iso)" '.offsite = {at: $at, error: "the repository could not be created"}'; fail "repository creation"; }
    else
      update_record "$record" --arg at "$(now_iso)" --arg error "$(last_words 1)" '.offsite = {at: $at, error: $error}'
      fail "upload of $ID (opening the repository)"
    fi
  fi
  # The accessories' dumps beside the database's (their names are ids and accessory names: no spaces).
  parts=$(jq -r --arg prefix "$backups/$ID.accessory-" '.accessories // {} | keys[] | $prefix + .' "$record")
  # Each tag its own --tag: older restic kept "a,b" as one tag.
  # shellcheck disable=SC2086  # $parts: one path a word
  if ! restic "$@" backup --host "$host" --tag slipway --tag "backup-$ID" ${tag:+--tag "$tag"} \
      "$backups/$ID.dump" "$backups/$ID.globals.sql" $parts "$record" >/dev/null 2>"$log"; then
    update_record "$record" --arg at "$(now_iso)" --arg error "$(last_words 1)" '.offsite = {at: $at, error: $error}'
    fail "upload of $ID"
  fi
  snapshot=$(newest_snapshot "$ID" "$@" || true)
  if [ "$(setting OFFSITE_APPEND_ONLY)" = yes ]; then
    update_record "$record" --arg at "$(now_iso)" --arg snapshot "$snapshot" \
      '.offsite = {at: $at, snapshot: $snapshot[0:8], retention: "append-only: backup.prune-offsite applies it"}'
    echo "$snapshot"
    echo "retention not applied: the repository is append-only (backup.prune-offsite applies it from the" \
      "operator's machine)"
    exit 0
  fi
  update_record "$record" --arg at "$(now_iso)" --arg snapshot "$snapshot" '.offsite = {at: $at, snapshot: $snapshot[0:8]}'
  # The same retention as on the server, over this inventory's snapshots only (tags separated by a comma
  # must all be there); snapshots differ in their paths, so they are grouped by host alone.
  restic "$@" forget --host "$host" --tag "slipway${tag:+,$tag}" --group-by host --keep-last "$(setting KEEP_LAST)" \
    --keep-daily "$(setting KEEP_DAILY)" --keep-weekly "$(setting KEEP_WEEKLY)" \
    --keep-monthly "$(setting KEEP_MONTHLY)" --prune >/dev/null 2>"$log" || fail "retention (forget --prune)"
  echo "$snapshot"
  ;;
check)
  lock
  subset=$(setting OFFSITE_CHECK_SUBSET)
  outcome=ok
  restic "$@" check --read-data-subset "$subset" >/dev/null 2>"$log" || outcome=failed
  write_record "$backups/.offsite-check.json" -n --arg at "$(now_iso)" --arg outcome "$outcome" --arg subset "$subset" \
    --arg detail "$(last_words 2)" \
    '{at: $at, outcome: $outcome, how: ("restic check --read-data-subset " + $subset), detail: $detail}'
  [ "$outcome" = ok ] || fail "check"
  echo "offsite repository checked (data subset $subset)"
  ;;
snapshots)
  listed=$(snapshots "$@") || fail "listing"
  printf '%s\n' "$listed" | jq -c --arg tag "$tag" "$readable"'readable($tag)'
  ;;
fetch)
  lock
  whose="$host${tag:+ ($tag)}"
  if [ "$ID" = latest ]; then
    listed=$(snapshots "$@") || fail "listing"
    ID=$(printf '%s\n' "$listed" | jq -r --arg tag "$tag" "$readable"'preferred($tag)
      | [.[].tags[]? | select(startswith("backup-")) | ltrimstr("backup-")] | sort | last // empty')
    [ -n "$ID" ] || { echo "no backup of $whose in the offsite repository" >&2; exit 2; }
  fi
  snapshot=$(newest_snapshot "$ID" "$@") || fail "listing"
  [ -n "$snapshot" ] || { echo "no backup $ID of $whose in the offsite repository" >&2; exit 2; }
  work=$backups/.incoming/offsite-$ID
  rm -rf "$work"
  mkdir -p "$work"
  restic "$@" restore "$snapshot" --target "$work" >/dev/null 2>"$log" || { rm -rf "$work"; fail "restore of $ID"; }
  found() { find "$work" -type f -name "$ID.$1" | head -n 1; }
  dump=$(found dump) globals=$(found globals.sql) record=$(found json)
  complete=yes
  if [ -z "$dump" ] || [ -z "$globals" ] || [ -z "$record" ] \
      || [ "$(sha256sum "$dump" | cut -d' ' -f1)" != "$(jq -r .sha256 "$record")" ]; then
    complete=no
  fi
  # Each accessory's dump the record names, with the checksum it records.
  parts=""
  if [ "$complete" = yes ]; then
    for name in $(jq -r '.accessories // {} | keys[]' "$record"); do
      part=$(found "accessory-$name")
      if [ -z "$part" ] || [ "$(sha256sum "$part" | cut -d' ' -f1)" != "$(jq -r --arg name "$name" '.accessories[$name].sha256' "$record")" ]; then
        complete=no
      fi
      parts="$parts $part"
    done
  fi
  if [ "$complete" = no ]; then
    rm -rf "$work"
    echo "offsite snapshot $snapshot of $ID is incomplete or its dumps do not match their checksums" >&2
    exit 1
  fi
  update_record "$record" --arg at "$(now_iso)" --arg snapshot "$snapshot" \
    '.fetched = {at: $at, snapshot: $snapshot[0:8]} | .offsite = (.offsite // {snapshot: $snapshot[0:8]})'
  # shellcheck disable=SC2086  # $parts: one path a word
  mv -f "$dump" "$globals" $parts "$backups/"
  mv -f "$record" "$backups/"
  rm -rf "$work"
  echo "$ID"
  ;;
*)
  echo "unknown action $action" >&2
  exit 1
  ;;
esac
