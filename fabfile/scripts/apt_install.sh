#!/bin/sh
# Install PACKAGES with apt, the way a run after an interruption needs it:
# wait, at most LOCK_WAIT_SECONDS, for another apt or dpkg (unattended-upgrades
# after boot, or an earlier run whose client went away) to let go of the dpkg
# lock, naming it; finish a dpkg run that was killed halfway; then update and
# install. Lines for the operator go to stderr, starting with "note: ".
# Usage: apt_install.sh LOCK_WAIT_SECONDS PACKAGE...
set -eu
lock_wait=$1
shift
export DEBIAN_FRONTEND=noninteractive
locks="/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock"

# Every process with one of the locks open, as "PID (COMMAND LINE)".
holders() {
  for fd in /proc/[0-9]*/fd/*; do
    target=$(readlink "$fd" 2>/dev/null) || continue
    for lock in $locks; do
      if [ "$target" = "$lock" ]; then
        pid=${fd#/proc/}
        pid=${pid%%/*}
        printf '%s (%s)\n' "$pid" "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
      fi
    done
  done | sort -u | paste -sd ',' -
}

deadline=$(( $(date +%s) + lock_wait ))
said=""
while held=$(holders) && [ -n "$held" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "the dpkg lock is still held after ${lock_wait} s by: $held" >&2
    exit 1
  fi
  if [ "$held" != "$said" ]; then
    echo "note: waiting for the dpkg lock, held by: $held" >&2
    said=$held
  fi
  sleep 2
done
remaining=$(( deadline - $(date +%s) ))
[ "$remaining" -gt 0 ] || remaining=1
apt_get() { apt-get -q -o "DPkg::Lock::Timeout=$remaining" "$@"; }
# dpkg leaves its journal in updates/, packages half configured, or packages
# half unpacked, when it was stopped halfway; apt refuses to run until the
# first two are finished, and the last must be unpacked again.
if [ -n "$(ls -A /var/lib/dpkg/updates)" ] || [ -n "$(dpkg --audit)" ]; then
  echo "note: finishing an interrupted dpkg run (dpkg --configure -a)" >&2
  dpkg --configure -a || echo "dpkg --configure -a left packages to reinstall" >&2
fi
half_unpacked=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk 'substr($1, 2, 1) == "H" || substr($1, 3, 1) == "R" { print $2 }')
apt_get update
if [ -n "$half_unpacked" ]; then
  echo "note: reinstalling what dpkg left half unpacked: $(echo "$half_unpacked" | paste -sd ' ' -)" >&2
  # One package name per word.
  # shellcheck disable=SC2086
  apt_get install -y --reinstall $half_unpacked
fi
apt_get install -y -f --no-install-recommends "$@"
