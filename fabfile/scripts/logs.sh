#!/bin/sh
# The logs of SERVICEs' containers: the serving release's for the app's own
# services, the app project's for nginx and db, and for an accessory its
# container (those with labels ACCESSORY_FILTER and NAME_LABEL=SERVICE). Each line is prefixed with
# its container's name and Docker's timestamp; without FOLLOW the lines of
# all containers come sorted by time, with it as they arrive, until stdin
# ends (the operator's Ctrl-C closes the channel) or every log ends. GREP,
# when not empty, keeps the lines holding it (fixed text). Exits
# NO_CONTAINERS_EXIT when no container matches.
# Usage: logs.sh APP INFRA_PROJECT ACCESSORY_FILTER NAME_LABEL TRAFFIC_DIR MARKER
#          MARKED_SLOT UNMARKED_SLOT FOLLOW SINCE TAIL GREP NO_CONTAINERS_EXIT SERVICE...
set -u
app=$1 infra=$2 accessories=$3 name_label=$4
shift 4
traffic=$1 marker=$2 marked=$3 unmarked=$4 follow=$5 since=$6 tail=$7 pattern=$8 none=$9
shift 9
serving=$(serving_release "$traffic" "$marker" "$marked" "$unmarked")
release=${serving#* }
# The serving release's and the app project's containers, each after its service, in two docker calls
# (one per service and project would cost a quarter of a second for `logs all`); a service that has none
# is an accessory's name, or nothing.
listed=$(for project in "$app-$release" "$infra"; do
  docker ps -a --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.oneoff=False" \
    --format '{{.Label "com.docker.compose.service"}} {{.Names}}' 2>/dev/null
done)
names=$(for service in "$@"; do
  found=$(printf '%s\n' "$listed" | awk -v service="$service" '$1 == service { print $2 }')
  if [ -n "$found" ]; then
    printf '%s\n' "$found"
  else
    docker ps -a --filter "label=$accessories" --filter "label=$name_label=$service" --format '{{.Names}}' 2>/dev/null
  fi
done | sort)
if [ -z "$names" ]; then
  if ! docker version >/dev/null 2>&1; then
    echo "Docker is not answering on the server (docker version failed): no logs to read" >&2
    exit 1
  fi
  echo "no containers of ${release:-any release} for $*" >&2
  exit "$none"
fi
set -- --timestamps --tail "$tail"
[ -z "$since" ] || set -- "$@" --since "$since"
[ "$follow" = 1 ] && set -- "$@" --follow
keep() { if [ -n "$pattern" ]; then grep --line-buffered -F -e "$pattern"; else cat; fi; }
collect() {
  for name in $names; do
    # sed -u passes each line on at once (mawk would wait for a full input buffer); container
    # names hold no / or & (Docker allows [a-zA-Z0-9_.-]).
    docker logs "$@" "$name" 2>&1 | sed -u "s/^/$name | /" | keep &
  done
  wait
}
if [ "$follow" = 1 ]; then
  # The operator gone (stdin ends): stop every `docker logs -f` of this run. (A background job's
  # stdin is /dev/null unless redirected: hand it ours through fd 3.)
  exec 3<&0
  (cat <&3 >/dev/null; kill 0) &
  collect "$@"
  kill 0
else
  # Sorted by Docker's timestamp, the third field, keeping each container's own order.
  collect "$@" </dev/null | sort -s -k3,3
fi
