#!/bin/sh
# Put back the file PATH was before provision replaced it: the copy kept at
# PREVIOUS (owner, mode and times too), or no file at all when there was none.
# Usage: restore_previous.sh PATH PREVIOUS
set -eu
path=$1 previous=$2
if [ -e "$previous" ]; then mv -f "$previous" "$path"; else rm -f "$path"; fi
