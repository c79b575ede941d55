#!/bin/sh
# Unpack a release (a tar on stdin, with --unpack) beside the others and
# make sure what it needs exists: the app network, named volumes, shared
# folders, and the database (when the --db-* flags are given).
#
# The database is never re-created because a release was deployed or rolled
# back to. It is created from the release's compose file only when it does
# not exist. An existing one is started as it is when stopped. When compose
# would re-create it for the release's db settings, --db-mode `keep` changes
# nothing and exits --db-changed-exit; `restart` re-creates it, unless the
# image's PostgreSQL major version differs from the data's (--db-major-exit).
# `leave` (rollback) never compares. A database container of an earlier
# layout, made before the password file (it mounts nothing at
# --db-password-mount), is kept running as it is under `keep` as long as
# its image is the release's: only `restart` gives it the file.
# nginx is likewise never re-created unasked: when --nginx-mode is `keep` and
# compose would re-create the running nginx for the release (its image,
# ports or mounts changed), nothing else happens and it exits
# --nginx-changed-exit; `restart` lets the nginx switch re-create it.
# The app's slot network (--slot-network, where nginx reaches the web
# containers at fixed addresses) is made with --subnet, Docker handing out
# --ip-range's addresses only, unless a route on this server overlaps it;
# nginx joins it. One that exists with another subnet, or an overlapping
# route, ends the run with --subnet-exit and what is in the way on stdout.
# The release goes into --slot (the one not serving): its .env names the slot
# for compose, and TRAFFIC_DIR/SLOT names the release. The release's file
# --db-password-name (the password a new database gets) is installed as
# --db-password-file, which the database container mounts.
# Every value comes as a flag's own argument, whatever it starts with; the
# operands after `--` are what the release mounts. An unknown flag, or a
# missing one, exits 2 before anything is touched.
# Usage: prepare.sh --releases DIR --release-id ID [--unpack] --slot SLOT
#          --traffic-dir DIR --network NAME --infra-project NAME
#          --nginx-container NAME --nginx-mode keep|restart|leave
#          --nginx-changed-exit CODE --slot-network NAME --subnet NET --ip-range NET
#          --subnet-exit CODE
#          [--db-project NAME --db-mode keep|restart|leave --db-container NAME
#           --db-image REF --db-volume NAME --db-changed-exit CODE
#           --db-major-exit CODE --db-password-name FILE --db-password-file PATH
#           --db-password-mount PATH]
#          -- [volume:NAME|dir:PATH]...
set -eu

refuse() { echo "prepare.sh: $1" >&2; exit 2; }

# needs FLAG VALUE...: refuses the run when a FLAG was not given (its VALUE is empty).
needs() {
  while [ $# -gt 0 ]; do
    [ -n "$2" ] || refuse "$1 is missing"
    shift 2
  done
}

unpack=0 db_project=
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; break ;;
    --unpack) unpack=1; shift; continue ;;
    --releases) releases=${2-} ;;
    --release-id) release_id=${2-} ;;
    --slot) slot=${2-} ;;
    --traffic-dir) traffic_dir=${2-} ;;
    --network) network=${2-} ;;
    --infra-project) infra_project=${2-} ;;
    --nginx-container) nginx_container=${2-} ;;
    --nginx-mode) nginx_mode=${2-} ;;
    --nginx-changed-exit) nginx_changed_exit=${2-} ;;
    --slot-network) slot_network=${2-} ;;
    --subnet) subnet=${2-} ;;
    --ip-range) ip_range=${2-} ;;
    --subnet-exit) subnet_exit=${2-} ;;
    --db-project) db_project=${2-} ;;
    --db-mode) db_mode=${2-} ;;
    --db-container) db_container=${2-} ;;
    --db-image) db_image=${2-} ;;
    --db-volume) db_volume=${2-} ;;
    --db-changed-exit) db_changed_exit=${2-} ;;
    --db-major-exit) db_major_exit=${2-} ;;
    --db-password-name) db_password_name=${2-} ;;
    --db-password-file) db_password_file=${2-} ;;
    --db-password-mount) db_password_mount=${2-} ;;
    --*) refuse "unknown flag $1" ;;
    *) refuse "$1: the mounts come after --" ;;
  esac
  [ $# -ge 2 ] || refuse "$1 needs a value"
  shift 2
done
needs --releases "${releases-}" --release-id "${release_id-}" --slot "${slot-}" \
  --traffic-dir "${traffic_dir-}" --network "${network-}" --infra-project "${infra_project-}" \
  --nginx-container "${nginx_container-}" --nginx-mode "${nginx_mode-}" \
  --nginx-changed-exit "${nginx_changed_exit-}" --slot-network "${slot_network-}" --subnet "${subnet-}" \
  --ip-range "${ip_range-}" --subnet-exit "${subnet_exit-}"
if [ -n "$db_project" ]; then
  needs --db-mode "${db_mode-}" --db-container "${db_container-}" --db-image "${db_image-}" \
    --db-volume "${db_volume-}" --db-changed-exit "${db_changed_exit-}" --db-major-exit "${db_major_exit-}" \
    --db-password-name "${db_password_name-}" --db-password-file "${db_password_file-}" \
    --db-password-mount "${db_password_mount-}"
fi
release_dir=$releases/$release_id

# Each written beside and renamed into place: a cut-off run leaves the old file or the new one.
replace() { printf '%s\n' "$2" > "$1.new" && mv -f "$1.new" "$1"; }

# Compose's own verdict on whether it would re-create CONTAINER for the release (the config-hash
# label it puts on containers is not what `config --hash` prints, so the two cannot be compared).
would_recreate() {
  docker compose --progress plain --dry-run -p "$1" -f "$release_dir/compose.yaml" up -d --no-deps "$2" 2>&1 \
    | grep -q "Container $3  Recreate\$"
}

# The release folder, with --unpack unpacked from stdin into a folder of its own and renamed into place.
release_unpacked() {
  mkdir -p "$releases"
  if [ "$unpack" = 1 ]; then
    incoming=$releases/.incoming-$release_id
    rm -rf "$incoming"
    mkdir -m 700 "$incoming"
    tar -x -C "$incoming"
    chmod 750 "$incoming"
    mv -T "$incoming" "$release_dir"
  fi
}

# The release in its slot: compose reads the slot from the release's .env, nginx's side the release from the slot's file.
slot_assigned() {
  mkdir -p "$traffic_dir"
  replace "$release_dir/.env" "SLIPWAY_SLOT=$slot"
  replace "$traffic_dir/$slot" "$release_id"
}

# With --nginx-mode keep, a release that would re-create the running nginx ends the run here: the running
# image on stdout, exit --nginx-changed-exit.
nginx_unchanged_unless_asked() {
  if [ "$nginx_mode" = keep ] && docker inspect "$nginx_container" >/dev/null 2>&1 \
      && would_recreate "$infra_project" nginx "$nginx_container"; then
    echo "running: $(docker inspect -f '{{.Config.Image}}' "$nginx_container")"
    exit "$nginx_changed_exit"
  fi
}

# mounts_made ITEM...: the app network, then each named volume (volume:NAME) and shared folder (dir:PATH).
mounts_made() {
  docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
  for item in "$@"; do
    case $item in
      volume:*) docker volume inspect "${item#volume:}" >/dev/null 2>&1 || docker volume create "${item#volume:}" >/dev/null ;;
      dir:*) mkdir -p "${item#dir:}" ;;
      *) echo "prepare.sh: unknown item $item" >&2; exit 2 ;;
    esac
  done
}

# The slot network as the flags describe it, nginx (when it exists) on it; or the run ends with --subnet-exit.
slot_network_made() {
  if found=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$slot_network" 2>/dev/null); then
    if [ "$found" != "$subnet" ]; then
      echo "network $slot_network has subnet $found"
      exit "$subnet_exit"
    fi
  else
    # Routes inside the subnet, and those around it but the default one.
    routes=$( (ip -4 -o route show root "$subnet"; ip -4 -o route show match "$subnet") | grep -v '^default' || true)
    if [ -n "$routes" ]; then
      echo "this server routes $(printf '%s' "$routes" | head -n 1 | cut -d ' ' -f 1-3) there"
      exit "$subnet_exit"
    fi
    docker network create --subnet "$subnet" --ip-range "$ip_range" "$slot_network" >/dev/null
  fi
  if docker inspect "$nginx_container" >/dev/null 2>&1 && ! docker network inspect \
      -f '{{range .Containers}}{{.Name}} {{end}}' "$slot_network" | grep -qw -- "$nginx_container"; then
    docker network connect "$slot_network" "$nginx_container"
  fi
}

# The release's database password (when it has one) where the database container mounts it.
db_password_installed() {
  if [ -f "$release_dir/$db_password_name" ]; then
    # Readable in the database container, whose entrypoint reads it as its own postgres user; the
    # folder (mode 700) keeps everyone else on this host out.
    mkdir -p "${db_password_file%/*}"
    chmod 700 "${db_password_file%/*}"
    cp "$release_dir/$db_password_name" "$db_password_file.new"
    chmod 644 "$db_password_file.new"
    mv -f "$db_password_file.new" "$db_password_file"
  fi
}

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

# The database up as --db-mode wants it (see the top), or the run ends with --db-changed-exit or
# --db-major-exit and what differs on stdout. It ends the run either way.
database_up() {
  if ! docker inspect "$db_container" >/dev/null 2>&1; then
    db_up
    exit 0
  fi
  if [ "$db_mode" = leave ] || ! would_recreate "$db_project" db "$db_container"; then
    db_started_as_it_is
    exit 0
  fi
  if [ "$db_mode" = keep ] && ! docker inspect -f '{{range .Mounts}}{{println .Destination}}{{end}}' "$db_container" \
      | grep -qxF -- "$db_password_mount" \
      && [ "$(docker inspect -f '{{.Config.Image}}' "$db_container")" = "$db_image" ]; then
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
  exit
}

release_unpacked
slot_assigned
nginx_unchanged_unless_asked
mounts_made "$@"
slot_network_made
[ -n "$db_project" ] || exit 0
db_password_installed
database_up
