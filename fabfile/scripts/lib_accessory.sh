#!/bin/sh
# Put before the scripts that create an accessory's container (shell.script's `uses`).
# accessory_environment ENV_FILE FOLDERS makes each of FOLDERS (one a line:
# the host folders the container mounts, which Docker would make root's) and
# ENV_FILE's folder (mode 700), and copies stdin (the container's
# environment) into a new private file beside ENV_FILE, named in
# $accessory_incoming, for the caller to move into place or drop.
accessory_environment() {
  printf '%s\n' "$2" | while IFS= read -r accessory_folder; do
    [ -z "$accessory_folder" ] || mkdir -p "$accessory_folder"
  done
  mkdir -p "${1%/*}"
  chmod 700 "${1%/*}"
  accessory_incoming=$(mktemp "$1.XXXXXX")
  cat > "$accessory_incoming"
}
