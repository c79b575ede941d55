#!/bin/sh
# Put before the scripts that read which release serves (shell.script's `uses`).
# serving_release TRAFFIC_DIR MARKER MARKED_SLOT UNMARKED_SLOT prints the serving
# slot (MARKER exists: MARKED_SLOT; else UNMARKED_SLOT), a blank, and the
# release in that slot (nothing when none).
serving_release() {
  if [ -e "$2" ]; then slot=$3; else slot=$4; fi
  echo "$slot $(cat "$1/$slot" 2>/dev/null)"
}
