#!/bin/sh
# Run commands one after another in one round trip, stopping at the first that fails; this script
# then exits with its status.
# Usage: sequence.sh MARK [ARGC STDIN_BYTES ARG...]...
# Each command is its ARGC arguments; it reads the next STDIN_BYTES bytes of this script's stdin
# (with 0, it reads /dev/null). After each command that succeeds, a newline (its output may not end in
# one) and "MARK NUMBER" are printed.
set -u
mark=$1
shift

run_first() {
  count=$1 bytes=$2
  shift 2
  index=0
  # The loop walks the arguments as they were, while "$@" is rebuilt from the first COUNT of them.
  for argument do
    [ "$index" -eq 0 ] && set --
    [ "$index" -lt "$count" ] && set -- "$@" "$argument"
    index=$((index + 1))
  done
  if [ "$bytes" -gt 0 ]; then
    head -c "$bytes" | "$@"
  else
    "$@" </dev/null
  fi
}

number=0
while [ "$#" -gt 0 ]; do
  count=$1
  number=$((number + 1))
  run_first "$@" || exit
  shift $((count + 2))
  printf '\n%s %s\n' "$mark" "$number"
done
