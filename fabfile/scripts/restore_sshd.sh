#!/bin/sh
# Put back the sshd drop-in PATH was before provision replaced it (the copy
# kept at PREVIOUS, or no file at all when there was none), then have sshd
# read its settings again; its exit status is the reload's.
# Usage: restore_sshd.sh PATH PREVIOUS
set -u
path=$1 previous=$2
if [ -e "$previous" ]; then mv -f "$previous" "$path"; else rm -f "$path"; fi
systemctl try-reload-or-restart ssh.service
