#!/bin/sh
# Replace PATH with stdin, atomically: a temporary file beside it gets OWNER,
# GROUP and MODE, must pass CANDIDATE_CHECK (shell text, run with the
# candidate as $1, under set -e), and is renamed over PATH; its folder is made
# when missing. With --previous, the file PATH was is first kept at PREVIOUS
# (owner, mode and times too), or PREVIOUS removed when there was none. When
# INSTALLED_CHECK (shell text, run with PATH as $1) then fails, that previous
# file comes back (or PATH goes) and it exits 1.
# Usage: install_file.sh [--previous PREVIOUS] [--candidate-check CHECK]
#          [--installed-check CHECK] PATH OWNER GROUP MODE
set -eu
previous='' candidate_check='' installed_check=''
while [ "$#" -gt 4 ]; do
  case $1 in
    --previous) previous=$2 ;;
    --candidate-check) candidate_check=$2 ;;
    --installed-check) installed_check=$2 ;;
    *) echo "install_file.sh: unknown option: $1" >&2; exit 2 ;;
  esac
  shift 2
done
path=$1 owner=$2 group=$3 mode=$4
case $path in */*) dir=${path%/*} ;; *) dir=. ;; esac
mkdir -p "${dir:-/}"
tmp=$(mktemp "$dir/.slipway.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chown "$owner:$group" "$tmp"
chmod "$mode" "$tmp"
if [ -n "$candidate_check" ]; then sh -ec "$candidate_check" slipway-candidate-check "$tmp"; fi
if [ -n "$previous" ]; then
  if [ -e "$path" ]; then cp -p "$path" "$previous"; else rm -f "$previous"; fi
fi
mv -f "$tmp" "$path"
if [ -n "$installed_check" ] && ! sh -c "$installed_check" slipway-installed-check "$path"; then
  if [ -e "$previous" ]; then mv -f "$previous" "$path"; else rm -f "$path"; fi
  printf 'rejected by: %s; previous file restored\n' "$installed_check" >&2
  exit 1
fi
