#!/bin/sh
# Print, section by section, everything a deploy needs to know about the
# server, in one round trip: what `current` points at, which slot serves and
# the release in it, every release record, the image ID of each REF, the compose project
# of each of the app's containers, whether nginx and the database run,
# Docker's image store,
# which local images became which server images, every image's layer
# chain, which of the SLOT_CONF files (the slots' nginx groups) exist, the
# layout recorded in LAYOUT_RECORD, whether the database container mounts
# its password file at PASSWORD_MOUNT, and the accessories' containers (those
# with the label ACCESSORY_LABEL, each printed as ACCESSORY_FORMAT says).
# Usage: state.sh MARK BASE_DIR APP NGINX_CONTAINER DB_CONTAINER SHIPPED_FILE
#          TRAFFIC_DIR MARKER MARKED_SLOT UNMARKED_SLOT SLOT_CONF SLOT_CONF
#          LAYOUT_RECORD PASSWORD_MOUNT ACCESSORY_LABEL ACCESSORY_FORMAT
#          [REF]...
set -u
mark=$1 base=$2 app=$3 nginx=$4 db=$5 shipped=$6 traffic=$7 marker=$8
shift 8
marked=$1 unmarked=$2 first_conf=$3 second_conf=$4 layout_record=$5 password_mount=$6 accessory_label=$7 accessory_format=$8
shift 8
echo "$mark base"; [ -d "$base/releases" ] && echo present
echo "$mark current"; readlink "$base/current" || true
echo "$mark serving"
serving=$(serving_release "$traffic" "$marker" "$marked" "$unmarked")
# A release deployed by a slipway before slots named itself in nginx's config.
[ -n "${serving#* }" ] || serving="$serving$(sed -n 's/^# slipway release: //p' "$base/shared/nginx/app.conf" 2>/dev/null)"
echo "$serving"
echo "$mark releases"
for record in "$base"/releases/*/release.json; do
  if [ -f "$record" ]; then head -n 1 "$record"; fi
done
echo "$mark images"
for ref in "$@"; do
  printf '%s %s\n' "$ref" "$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || echo missing)"
done
echo "$mark projects"
docker ps -a --filter "label=slipway.app=$app" --format '{{.Label "com.docker.compose.project"}} {{.Names}}'
echo "$mark nginx"; docker inspect -f '{{.State.Running}}' "$nginx" 2>/dev/null || echo false
echo "$mark db"; docker inspect -f '{{.State.Running}}' "$db" 2>/dev/null || echo false
echo "$mark store"
if docker info -f '{{json .DriverStatus}}' 2>/dev/null | grep -q io.containerd.snapshotter; then echo containerd; else echo graphdriver; fi
echo "$mark shipped"; cat "$shipped" 2>/dev/null || true
echo "$mark layers"
docker image ls -q | sort -u | xargs -r docker image inspect -f '{{json .RootFS.Layers}}'
echo "$mark slot confs"
for conf in "$first_conf" "$second_conf"; do
  if [ -f "$conf" ]; then echo "$conf"; fi
done
echo "$mark layout"; cat "$layout_record" 2>/dev/null || true
echo "$mark db password file"
if docker inspect "$db" >/dev/null 2>&1; then
  if docker inspect -f '{{range .Mounts}}{{println .Destination}}{{end}}' "$db" | grep -qxF -- "$password_mount"; then
    echo mounted
  else
    echo absent
  fi
fi
echo "$mark accessories"
docker ps -a --filter "label=$accessory_label" --format "$accessory_format" 2>/dev/null || true
