#!/bin/sh
# Fetch the key Docker's apt repository is signed with from URL into KEYRING
# (its folder made when missing), readable by apt.
# Usage: docker_keyring.sh URL KEYRING
set -eu
url=$1 keyring=$2
install -m 0755 -d "${keyring%/*}"
curl -fsSL "$url" -o "$keyring"
chmod a+r "$keyring"
