#!/bin/sh
# Unpack a release (a tar on stdin, when UNPACK is 1) beside the others and
# make sure what it needs exists: the app network, named volumes, shared
# folders, and the database (when DB_PROJECT is not empty).
# Usage: prepare.sh RELEASES_DIR RELEASE_ID UNPACK NETWORK DB_PROJECT [volume:NAME|dir:PATH]...
set -eu
releases=$1 release_id=$2 unpack=$3 network=$4 db_project=$5
shift 5
release_dir=$releases/$release_id
mkdir -p "$releases"
if [ "$unpack" = 1 ]; then
  incoming=$releases/.incoming-$release_id
  rm -rf "$incoming"
  mkdir -m 700 "$incoming"
  tar -x -C "$incoming"
  chmod 750 "$incoming"
  mv -T "$incoming" "$release_dir"
fi
docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
for item in "$@"; do
  case $item in
    volume:*) docker volume inspect "${item#volume:}" >/dev/null 2>&1 || docker volume create "${item#volume:}" >/dev/null ;;
    dir:*) mkdir -p "${item#dir:}" ;;
    *) echo "prepare.sh: unknown item $item" >&2; exit 2 ;;
  esac
done
if [ -n "$db_project" ]; then
  docker compose -p "$db_project" -f "$release_dir/compose.yaml" up -d --no-deps --wait --wait-timeout 120 db
fi
