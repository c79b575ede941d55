#!/bin/sh
# Stop the steps of a locked run that still run on the server after their
# operator pressed Ctrl-C, and return once none is left. Each step is a
# `timeout` holding STEPS_LOCK shared (commands/lock.py, in_run): TERM to it
# reaches everything the step started, and KILL follows after its grace.
# Usage: stop_steps.sh STEPS_LOCK WAIT_SECONDS
set -u
steps=$1 wait=$2
for fd in /proc/[0-9]*/fd/*; do
  [ "$(readlink "$fd" 2>/dev/null)" = "$steps" ] || continue
  pid=${fd#/proc/}
  pid=${pid%%/*}
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = timeout ]; then
    echo "stopped $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
    kill -TERM "$pid" 2>/dev/null
  fi
done
if ! flock -x -w "$wait" "$steps" true; then
  echo "steps of the interrupted run still hold $steps after ${wait}s" >&2
  exit 1
fi
