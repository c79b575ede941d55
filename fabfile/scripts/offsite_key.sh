#!/bin/sh
# Make the server's own ed25519 key for the offsite backup host at KEY (and
# KEY.pub), owned by USER and USER's group of that name: made on the server,
# so its private half never travels.
# Usage: offsite_key.sh KEY USER
set -eu
key=$1 user=$2
ssh-keygen -q -t ed25519 -N '' -C "slipway-backup@$(hostname)" -f "$key"
chown "$user:$user" "$key" "$key.pub"
