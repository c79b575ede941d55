#!/bin/sh
# Print facts, each a shell line, under "MARK NAME" headers in the order given (a fact named - prints
# its own headers); a fact's stderr is dropped. The facts run at the same time, their outputs kept in a
# private folder in memory (/dev/shm: a full disk, when status matters most, does not stop it) until all
# are done; where no such folder can be made, they run one after another.
# Usage: gather.sh MARK [NAME LINE]...
set -u
mark=$1
shift
dir=$(mktemp -d /dev/shm/slipway-gather.XXXXXX 2>/dev/null) || dir=
[ -z "$dir" ] || trap 'rm -rf "$dir"' EXIT

header() {
  [ "$1" = - ] || echo "$mark $1"
}

number=0 name=
for word do
  if [ -z "$name" ]; then name=$word; continue; fi
  number=$((number + 1))
  if [ -n "$dir" ]; then
    sh -c "$word" >"$dir/$number" 2>/dev/null </dev/null &
  else
    header "$name"
    sh -c "$word" 2>/dev/null </dev/null
  fi
  name=
done
[ -n "$dir" ] || exit 0
wait
number=0 name=
for word do
  if [ -z "$name" ]; then name=$word; continue; fi
  number=$((number + 1))
  header "$name"
  cat "$dir/$number"
  name=
done
