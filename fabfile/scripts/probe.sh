#!/bin/sh
# Print, section by section under MARK lines, everything provision needs to
# know about the server, in one round trip (run as root): the OS, which of
# the PACKAGEs are installed, USER's passwd entry and groups, docker.service,
# the time zone, the firewall, the swap in use and SWAP_FILE's size, the
# ports sshd listens on, whether each TIMER is enabled, OFFSITE_KEY's public
# half, whether APP_STATE_DIR exists and the layout it records; then, in the order given, each FILE
# (mode, owner, group and base64 content, when it is one) and DIR (mode,
# owner, group, when it is one), and those at RELATIVE paths in the home
# USER's passwd entry names (none when it has no such entry).
# Usage: probe.sh MARK USER SWAP_FILE OFFSITE_KEY APP_STATE_DIR
#          [--package PACKAGE | --timer TIMER | --home-file RELATIVE |
#           --home-dir RELATIVE | --file FILE | --dir DIR]...
set -u
mark=$1 user=$2 swap_file=$3 offsite_key=$4 app_state=$5
shift 5

section() { printf '%s %s\n' "$mark" "$1"; }

# Run the function RUN with the value of every FLAG VALUE pair in
# ARG..., in order.
# Usage: with_values FLAG RUN ARG...
with_values() {
  flag=$1 run=$2
  shift 2
  key=
  for arg do
    shift
    if [ -z "$key" ]; then key=$arg; continue; fi
    if [ "$key" = "$flag" ]; then set -- "$@" "$arg"; fi
    key=
  done
  "$run" "$@"
}

packages() { dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true; }

timers() { if [ "$#" -gt 0 ]; then systemctl is-enabled "$@" 2>/dev/null || true; fi; }

probe_file() {
  section "file $1"
  if [ -f "$1" ]; then stat -c '%a %U %G' -- "$1"; base64 -w0 -- "$1"; echo; fi
}

probe_dir() {
  section "dir $1"
  if [ -d "$1" ]; then stat -c '%a %U %G' -- "$1"; fi
}

section os
# The server's own file, read as it is.
# shellcheck disable=SC1091
. /etc/os-release
echo "${ID:-}"; echo "${VERSION_ID:-}"; echo "${VERSION_CODENAME:-}"
dpkg --print-architecture
section packages; with_values --package packages "$@"
section user
getent passwd "$user" | cut -d: -f6,7
id -nG "$user" 2>/dev/null || true
section docker
systemctl is-enabled docker.service 2>/dev/null || true
systemctl is-active docker.service 2>/dev/null || true
section timezone; readlink /etc/localtime || true
section firewall; if command -v ufw >/dev/null; then ufw status verbose; fi
section swaps; swapon --show=NAME,SIZE --noheadings --bytes 2>/dev/null || true
section swapfile; stat -c %s -- "$swap_file" 2>/dev/null || true
section sshd_ports; sshd -T 2>/dev/null | awk '$1 == "port" {print $2}'
section timers; with_values --timer timers "$@"
section offsite_key; cat -- "$offsite_key.pub" 2>/dev/null || true
section app_state; if [ -d "$app_state" ]; then echo present; fi
section layout; cat -- "$app_state/layout" 2>/dev/null || true
# The home its passwd entry names (a user still to be made has no files in it yet).
home=$(getent passwd "$user" | cut -d: -f6)
while [ "$#" -ge 2 ]; do
  case $1 in
    --home-file) if [ -n "$home" ]; then probe_file "$home/$2"; fi ;;
    --home-dir) if [ -n "$home" ]; then probe_dir "$home/$2"; fi ;;
    --file) probe_file "$2" ;;
    --dir) probe_dir "$2" ;;
  esac
  shift 2
done
