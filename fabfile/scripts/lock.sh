#!/bin/sh
# Hold the deploy lock for as long as this script's stdin stays open.
# Usage: lock.sh LOCK_FILE INFO_FILE STEPS_LOCK HOLDER_JSON DETACHED_WAIT SETTLE_WAIT BUSY_EXIT [AUDIT_LOG EVENT]
# With AUDIT_LOG, the EVENT line is appended to it once the lock is held (the run's first audit line,
# in the same round trip).
#
# flock is atomic and dies with its holder: when slipway exits, is stopped
# with Ctrl-C or loses its SSH connection (sshd's keep-alives notice a
# vanished client), stdin closes. The holder then marks itself detached and
# waits for the run's steps still in flight (each holds STEPS_LOCK shared)
# before it lets go, so a step that outlives its SSH session never overlaps
# the next run. A new run waits for a detached holder, and for a moment when
# no live holder is on record (one starting or finishing, or lock.status
# looking), instead of reporting "an unknown holder".
set -eu
lock_file=$1 info=$2 steps=$3 holder=$4 detached_wait=$5 settle_wait=$6 busy_exit=$7
audit_log=${8:-} event=${9:-}

holder_alive() {
  pid=$(sed -n 's/^{"pid": \([0-9][0-9]*\),.*/\1/p' "$info" 2>/dev/null)
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/fd/9" 2>/dev/null)" = "$lock_file" ]
}

busy() {
  cat "$info" 2>/dev/null || echo '{}'
  exit "$busy_exit"
}

mkdir -p "$(dirname "$lock_file")"
exec 9>>"$lock_file"
if ! flock -n 9; then
  if grep -q '"detached": true' "$info" 2>/dev/null; then
    flock -w "$detached_wait" 9 || busy
  elif holder_alive; then
    busy
  else
    flock -w "$settle_wait" 9 || busy
  fi
fi
printf '{"pid": %s, "holder": %s}\n' "$$" "$holder" > "$info"
if [ -n "$audit_log" ]; then
  mkdir -p "$(dirname "$audit_log")"
  printf '%s\n' "$event" >> "$audit_log"
fi
echo LOCKED
# Only this shell holds the lock, on descriptor 9 (force_unlock.sh checks it);
# the reader runs in a subshell so the shell's own descriptors stay as they are.
(exec 9>&-; cat >/dev/null)
printf '{"pid": %s, "holder": %s, "detached": true}\n' "$$" "$holder" > "$info"
flock -x "$steps" true
rm -f "$info"
