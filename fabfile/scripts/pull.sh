#!/bin/sh
# Pull each image and print `REF IMAGE_ID`; the first failure stops it.
# Usage: pull.sh REF...
set -eu
for ref in "$@"; do
  docker pull -q "$ref" >/dev/null
  image_id=$(docker image inspect -f '{{.Id}}' "$ref")
  printf '%s %s\n' "$ref" "$image_id"
done
