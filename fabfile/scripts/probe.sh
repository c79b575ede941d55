#!/bin/sh
# Print, section by section under MARK lines, everything provision needs to
# know about the server, in one round trip (run as root): the OS, which of
# the PACKAGEs are installed, USER's passwd entry and groups, docker.service,
# the time zone, the swap in use and SWAP_FILE's size, the ports sshd listens
# on, whether each TIMER is enabled, OFFSITE_KEY's public half, whether
# APP_STATE_DIR exists and the layout it records; then every FILE and DIR,
# and those at RELATIVE paths in the home USER's passwd entry names (none
# when it has no such entry), as one gzipped tar in base64 on one line
# (each member's mode, owner, group and a file's content; a missing path is
# not in it); last, the firewall.
# Usage: probe.sh MARK USER SWAP_FILE OFFSITE_KEY APP_STATE_DIR
#          [--package PACKAGE | --timer TIMER | --home-file RELATIVE |
#           --home-dir RELATIVE | --file FILE | --dir DIR]...
set -u
mark=$1 user=$2 swap_file=$3 offsite_key=$4 app_state=$5
shift 5
# ufw is a Python program (a tenth of a second): it runs while the rest is read, its answer kept in memory
# (where no such file can be made, it runs at the end instead).
firewall=
if command -v ufw >/dev/null; then
  firewall=$(mktemp /dev/shm/slipway-probe.XXXXXX 2>/dev/null) || firewall=
  if [ -n "$firewall" ]; then
    trap 'rm -f "$firewall"' EXIT
    ufw status verbose >"$firewall" &
  fi
fi

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

# Every FILE and DIR of ARG... (--file, --dir, and --home-file and --home-dir in HOME unless it is empty)
# in one tar: forty files read one by one would cost a tenth of a second. A link is read as what it names.
# Usage: paths HOME ARG...
paths() {
  home=$1 key=
  shift
  for arg do
    shift
    if [ -z "$key" ]; then key=$arg; continue; fi
    case $key in
      --home-file | --home-dir) if [ -n "$home" ]; then set -- "$@" "$home/$arg"; fi ;;
      --file | --dir) set -- "$@" "$arg" ;;
    esac
    key=
  done
  if [ "$#" -gt 0 ]; then
    tar -c -P --no-recursion --dereference --hard-dereference --format=posix -f - -- "$@" 2>/dev/null | gzip -1 | base64 -w0
    echo
  fi
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
section swaps; swapon --show=NAME,SIZE --noheadings --bytes 2>/dev/null || true
section swapfile; stat -c %s -- "$swap_file" 2>/dev/null || true
section sshd_ports; sshd -T 2>/dev/null | awk '$1 == "port" {print $2}'
section timers; with_values --timer timers "$@"
section offsite_key; cat -- "$offsite_key.pub" 2>/dev/null || true
section app_state; if [ -d "$app_state" ]; then echo present; fi
section layout; cat -- "$app_state/layout" 2>/dev/null || true
section paths; paths "$(getent passwd "$user" | cut -d: -f6)" "$@"
section firewall
if [ -n "$firewall" ]; then
  wait
  cat "$firewall"
elif command -v ufw >/dev/null; then
  ufw status verbose
fi
