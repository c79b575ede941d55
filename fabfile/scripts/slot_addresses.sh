#!/bin/sh
# Give each CONTAINER its ADDRESS on NETWORK, the app's slot network, where
# nginx reaches it: joined there when it is not, moved when it is at another
# address (a release that served from the other slot before). A container
# keeps what it was given across restarts of itself, of Docker and of the
# server.
# Usage: slot_addresses.sh NETWORK CONTAINER=ADDRESS...
set -eu
network=$1
shift
# One line a container on the network: NAME ADDRESS/PREFIX.
members=$(docker network inspect -f '{{range .Containers}}{{.Name}} {{.IPv4Address}}{{"\n"}}{{end}}' "$network")
for pair in "$@"; do
  container=${pair%%=*} address=${pair#*=}
  joined=$(printf '%s\n' "$members" | awk -v name="$container" '$1 == name {sub("/.*", "", $2); print $2}')
  [ "$joined" != "$address" ] || continue
  [ -z "$joined" ] || docker network disconnect "$network" "$container"
  docker network connect --ip "$address" "$network" "$container"
done
