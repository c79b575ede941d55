#!/bin/sh
# shellcheck disable=SC2154  # conf: set by the script that sources this, before it asks for a setting
# What the scripts provision installs in /usr/local/lib/slipway share: provision
# installs this file beside them (before them), and each one sources it from
# there (`. "$(dirname "$0")/lib_installed.sh"`). Functions only: unlike the
# other lib_*.sh files, it is never put before a script sent over SSH.

# setting KEY prints the value of the last KEY= line of the file $conf names
# (nothing when there is none). Settings files are read, never sourced.
setting() { sed -n "s/^$1=//p" "$conf" | tail -n 1; }

# now_iso prints the time now, UTC, as 2026-11-23T03:00:00Z.
now_iso() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# write_record RECORD JQ_ARGS... replaces RECORD with what jq -c JQ_ARGS prints
# (JQ_ARGS name jq's input, or have -n for a new record), through RECORD.tmp
# and a rename; RECORD is left as it was when jq fails.
write_record() {
  record=$1; shift
  jq -c "$@" > "$record.tmp" && mv -f "$record.tmp" "$record"
}

# update_record RECORD JQ_ARGS... is write_record with RECORD itself as jq's
# input: RECORD through the filter in JQ_ARGS.
update_record() {
  record=$1; shift
  write_record "$record" "$@" "$record"
}

# merge_into_record RECORD JQ_ARGS... is RECORD (or {} when there is none yet)
# through jq -c JQ_ARGS, with $at the time now (now_iso). It is written 0644
# to a temporary file of its own beside RECORD (mktemp: two runs at once never
# share one), then renamed into place.
merge_into_record() {
  record=$1; shift
  tmp=$(mktemp "$record.XXXXXX")
  { cat "$record" 2>/dev/null || echo '{}'; } | jq -c --arg at "$(now_iso)" "$@" > "$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$record"
}

# accessory NAME FILTER prints what jq -r's FILTER makes of accessory NAME's
# entry in the ACCESSORIES setting (a JSON list; see commands/accessories.py).
accessory() { setting ACCESSORIES | jq -r --arg name "$1" ".[] | select(.name == \$name) | $2"; }

# accessories prints the names of the accessories whose data joins the backups.
accessories() { setting ACCESSORIES | jq -r '.[]?.name'; }

# with_words NAME FILTER COMMAND... runs COMMAND followed by the words of the
# list FILTER makes of accessory NAME's entry, each one word however it reads:
# they travel base64-encoded (no splitting, no globbing, no evaluation).
with_words() {
  words_name=$1 words_filter=$2
  shift 2
  # w before each word keeps an empty one; the x after it, its trailing newlines.
  for words_word in $(accessory "$words_name" "$words_filter | .[] | \"w\" + @base64"); do
    words_word=$(printf '%s' "${words_word#w}" | base64 -d; echo x)
    set -- "$@" "${words_word%x}"
  done
  "$@"
}

# copy_dump DUMP CONTAINER FILE puts DUMP at FILE in CONTAINER (running or
# not) as root's file, mode 0644, the way a service writes its own snapshots:
# Docker makes what it copies in root's, so a service running as another user
# reads it only so. Through a hard link named as FILE, in a folder of its own
# in the .incoming folder beside DUMP (never a copy of a large file).
copy_dump() {
  mkdir -p "${1%/*}/.incoming"
  copy_stage=$(mktemp -d "${1%/*}/.incoming/copy.XXXXXX") copy_folder=${3%/*}
  ln "$1" "$copy_stage/${3##*/}"
  copy_status=0
  tar -C "$copy_stage" --mode=0644 -cf - "${3##*/}" | docker cp - "$2:${copy_folder:-/}" || copy_status=$?
  rm -rf "$copy_stage"
  return "$copy_status"
}
