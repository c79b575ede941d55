#!/bin/sh
# Unpack a release (a tar on stdin, when UNPACK is 1) beside the others and
# make sure what it needs exists: the app network, named volumes, shared
# folders, and the database (when DB_PROJECT is not empty).
#
# The database is never re-created because a release was deployed or rolled
# back to. It is created from the release's compose file only when it does
# not exist. An existing one is started as it is when stopped. When compose
# would re-create it for the release's db settings, DB_MODE `keep` changes
# nothing and exits DB_CHANGED_EXIT; `restart` re-creates it, unless the
# image's PostgreSQL major version differs from the data's (DB_MAJOR_EXIT).
# `leave` (rollback) never compares.
# nginx is likewise never re-created unasked: when NGINX_MODE is `keep` and
# compose would re-create the running nginx for the release (its image,
# ports or mounts changed), nothing else happens and it exits
# NGINX_CHANGED_EXIT; `restart` lets the nginx switch re-create it.
# The release goes into SLOT (the one not serving): its .env names the slot
# for compose, and TRAFFIC_DIR/SLOT names the release. The release's file
# DB_PASSWORD_NAME (the password a new database gets) is installed as
# DB_PASSWORD_FILE, which the database container mounts.
# Usage: prepare.sh RELEASES_DIR RELEASE_ID UNPACK NETWORK DB_PROJECT DB_MODE
#          DB_CONTAINER DB_IMAGE DB_VOLUME DB_CHANGED_EXIT DB_MAJOR_EXIT
#          INFRA_PROJECT NGINX_CONTAINER NGINX_MODE NGINX_CHANGED_EXIT
#          SLOT TRAFFIC_DIR DB_PASSWORD_NAME DB_PASSWORD_FILE [volume:NAME|dir:PATH]...
set -eu
releases=$1 release_id=$2 unpack=$3 network=$4 db_project=$5 db_mode=$6
db_container=$7 db_image=$8 db_volume=$9
db_changed_exit=${10} db_major_exit=${11}
infra_project=${12} nginx_container=${13} nginx_mode=${14} nginx_changed_exit=${15}
slot=${16} traffic_dir=${17} db_password_name=${18} db_password_file=${19}
shift 19
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
# Each written beside and renamed into place: a cut-off run leaves the old file or the new one.
replace() { printf '%s\n' "$2" > "$1.new" && mv -f "$1.new" "$1"; }
mkdir -p "$traffic_dir"
replace "$release_dir/.env" "SLIPWAY_SLOT=$slot"
replace "$traffic_dir/$slot" "$release_id"
# Compose's own verdict on whether it would re-create CONTAINER for the release (the config-hash
# label it puts on containers is not what `config --hash` prints, so the two cannot be compared).
would_recreate() {
  docker compose --progress plain --dry-run -p "$1" -f "$release_dir/compose.yaml" up -d --no-deps "$2" 2>&1 \
    | grep -q "Container $3  Recreate\$"
}
if [ "$nginx_mode" = keep ] && docker inspect "$nginx_container" >/dev/null 2>&1 \
    && would_recreate "$infra_project" nginx "$nginx_container"; then
  echo "running: $(docker inspect -f '{{.Config.Image}}' "$nginx_container")"
  exit "$nginx_changed_exit"
fi
docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
for item in "$@"; do
  case $item in
    volume:*) docker volume inspect "${item#volume:}" >/dev/null 2>&1 || docker volume create "${item#volume:}" >/dev/null ;;
    dir:*) mkdir -p "${item#dir:}" ;;
    *) echo "prepare.sh: unknown item $item" >&2; exit 2 ;;
  esac
done
[ -n "$db_project" ] || exit 0
if [ -f "$release_dir/$db_password_name" ]; then
  # Readable in the database container, whose entrypoint reads it as its own postgres user; the
  # folder (mode 700) keeps everyone else on this host out.
  mkdir -p "${db_password_file%/*}"
  chmod 700 "${db_password_file%/*}"
  cp "$release_dir/$db_password_name" "$db_password_file.new"
  chmod 644 "$db_password_file.new"
  mv -f "$db_password_file.new" "$db_password_file"
fi

db_up() {
  docker compose -p "$db_project" -f "$release_dir/compose.yaml" up -d --no-deps --wait --wait-timeout 120 db
}
db_started_as_it_is() {
  docker start "$db_container" >/dev/null
  deadline=$(( $(date +%s) + 120 ))
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$db_container")" = healthy ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "database $db_container did not get healthy in 120 s" >&2; exit 1; }
    sleep 1
  done
}
if ! docker inspect "$db_container" >/dev/null 2>&1; then
  db_up
  exit 0
fi
if [ "$db_mode" = leave ] || ! would_recreate "$db_project" db "$db_container"; then
  db_started_as_it_is
  exit 0
fi
if [ "$db_mode" != restart ]; then
  echo "running: $(docker inspect -f '{{.Config.Image}}' "$db_container"); release: $db_image"
  exit "$db_changed_exit"
fi
image_major=$(docker run --rm --entrypoint postgres "$db_image" --version | sed -n 's/.*) \([0-9][0-9]*\).*/\1/p')
data_major=$(docker run --rm --entrypoint cat -v "$db_volume:/pgdata:ro" "$db_image" /pgdata/PG_VERSION)
if [ "$image_major" != "$data_major" ]; then
  echo "image: $image_major; data: $data_major"
  exit "$db_major_exit"
fi
db_up
