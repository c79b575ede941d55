#!/bin/sh
# Replace PATH with stdin through a temporary file beside it and a rename
# (its folder is made when missing).
# Usage: write_file.sh PATH MODE
set -eu
path=$1 mode=$2
mkdir -p "$(dirname "$path")"
tmp=$(mktemp "$path.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod "$mode" "$tmp"
mv -f "$tmp" "$path"
trap - EXIT
