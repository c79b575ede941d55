#!/bin/sh
# COMMAND in a new container NAME of SERVICE of the serving release (its
# compose file: image, env, mounts), removed when it ends, and also when the
# operator goes away first: with TERMINAL, sshd hangs up the terminal; without,
# stdin (the SSH channel, which sends nothing) ends. Exits with COMMAND's
# status.
# Usage: one_off.sh APP RELEASES_DIR TRAFFIC_DIR MARKER MARKED_SLOT UNMARKED_SLOT
#          NAME TERMINAL SERVICE COMMAND...
set -u
app=$1 releases=$2 traffic=$3 marker=$4 marked=$5 unmarked=$6 name=$7 terminal=$8 service=$9
shift 9
serving=$(serving_release "$traffic" "$marker" "$marked" "$unmarked")
release=${serving#* }
if [ -z "$release" ]; then
  echo "error: no release serves yet; deploy first" >&2
  exit 1
fi
remove() { docker rm -f "$name" >/dev/null 2>&1; }
# The run waits in the background, so that a hang-up ends the wait at once: Docker's CLI outlives it
# (it passes the signal on to the container), and a trap runs only once a foreground command ends.
trap 'remove; exit 129' HUP
trap 'remove; exit 143' TERM
exec 3<&0
if [ "$terminal" = 1 ]; then
  docker compose -p "$app-$release" -f "$releases/$release/compose.yaml" run --rm --no-deps --name "$name" \
    "$service" "$@" <&3 &
else
  # The watcher's output goes nowhere, so sshd does not wait for it once the command is done.
  (cat <&3 >/dev/null; remove) >/dev/null 2>&1 &
  docker compose -p "$app-$release" -f "$releases/$release/compose.yaml" run --rm --no-deps -T --name "$name" \
    "$service" "$@" </dev/null &
fi
wait "$!"
