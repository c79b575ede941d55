#!/bin/sh
# Print the home USER's passwd entry names (nothing when there is no such user).
# Usage: deploy_home.sh USER
set -u
getent passwd "$1" | cut -d: -f6
