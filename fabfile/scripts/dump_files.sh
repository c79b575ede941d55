#!/bin/sh
# Print each file base64-encoded under a marker line (an absent file: the
# marker alone): the serving release's files, for a dry run's diff.
# Usage: dump_files.sh MARK PATH...
set -u
mark=$1
shift
for path in "$@"; do
  echo "$mark $path"
  if [ -f "$path" ]; then base64 -w0 "$path"; echo; fi
done
