#!/bin/sh
# Load an image archive from stdin, print the server's ID of each REF, and
# remember which local image each one is (SHIPPED_FILE, lines "LOCAL_ID
# SERVER_ID"): with Docker's containerd image store the two IDs differ.
# Usage: load.sh SHIPPED_FILE REF|LOCAL_ID...
set -eu
shipped=$1
shift
docker load -q >/dev/null
mkdir -p "$(dirname "$shipped")"
mapping=$(mktemp "$shipped.XXXXXX")
for pair in "$@"; do
  ref=${pair%%|*} local_id=${pair#*|}
  server_id=$(docker image inspect -f '{{.Id}}' "$ref")
  echo "$ref $server_id"
  echo "$local_id $server_id" >> "$mapping"
done
if [ -f "$shipped" ]; then cat "$shipped" >> "$mapping"; fi
sort -u -o "$mapping" "$mapping"
mv -f "$mapping" "$shipped"
