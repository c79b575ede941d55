#!/bin/sh
# Make FILE a swap file of SIZE (as fallocate reads it, like 512M), in use
# now and after a reboot: one in use is switched off and made anew, and
# /etc/fstab gets its line when it has none starting with FILE.
# Usage: swap_file.sh FILE SIZE
set -eu
file=$1 size=$2
if swapon --show=NAME --noheadings | grep -qxF -- "$file"; then swapoff "$file"; fi
rm -f "$file"
fallocate -l "$size" "$file"
chmod 600 "$file"
mkswap "$file" >/dev/null
swapon "$file"
listed() { SWAP_FILE=$file awk 'index($0, ENVIRON["SWAP_FILE"] " ") == 1 { found = 1 } END { exit !found }' /etc/fstab; }
listed || printf '%s none swap sw 0 0\n' "$file" >> /etc/fstab
