#!/bin/sh
# Move traffic, and install nginx's config (stdin) when it changed.
#
# Traffic moves by the slot marker alone: MARK 1 creates MARKER (its slot
# serves), 0 removes it (the other slot serves), empty leaves it. nginx reads
# it per request, so moving traffic reloads nothing and closes no connection.
#
# A changed config is installed only if `nginx -t` passes; then the marker
# moves and nginx reloads, so the old config's workers already send new
# requests to the new slot (a config made by an older slipway names its
# release's containers, which still run) and the new config's workers do too.
# The previous config is kept as .previous until this is done and put back
# if the test fails: a config nginx refuses stops the switch before any
# traffic moved. nginx is (re-)created from COMPOSE_FILE instead of reloaded
# when it is not running, or when RECREATE is 1 and compose would re-create
# it (its image, ports or mounts changed): then the config is tested in a
# throwaway container of the new service. What happened to nginx goes to
# stdout.
#
# Once traffic moved, HEALTH_PATH must answer 2xx through nginx itself (its
# published port, as SCHEME://HOST): a slot name nginx cannot resolve, or
# one that reaches something else, is caught before the old containers
# stop. If it does not within a few seconds, the marker moves back and the
# script exits MISROUTED_EXIT. An empty SCHEME skips the check.
# Usage: switch_nginx.sh CONF CONTAINER PROJECT COMPOSE_FILE RECREATE MARKER MARK SCHEME HOST HEALTH_PATH MISROUTED_EXIT
set -eu
conf=$1 container=$2 project=$3 compose_file=$4 recreate=$5 marker=$6 mark=$7
scheme=$8 host=$9
shift 9
health_path=$1 misrouted_exit=$2
previous=$conf.previous
nginx_dir=$(dirname "$conf")
mkdir -p "$nginx_dir" "$(dirname "$marker")"
compose() { docker compose -p "$project" -f "$compose_file" "$@"; }
move_traffic() {
  case $mark in
    1) : > "$marker" ;;
    0) rm -f "$marker" ;;
  esac
}
through_nginx() {
  case $scheme in
    https) curl -sk -o /dev/null -w '%{http_code}' --max-time 3 --resolve "$host:443:127.0.0.1" "https://$host$health_path" ;;
    *) curl -s -o /dev/null -w '%{http_code}' --max-time 3 -H "Host: $host" "http://127.0.0.1$health_path" ;;
  esac
}
answers_through_nginx() {
  [ -n "$scheme" ] && [ -n "$mark" ] || return 0
  tries=0
  while [ "$tries" -lt 10 ]; do
    code=$(through_nginx || true)
    case $code in 2??) return 0 ;; esac
    tries=$((tries + 1))
    sleep 0.5
  done
  case $mark in
    1) rm -f "$marker" ;;
    0) : > "$marker" ;;
  esac
  echo "$health_path answered ${code:-nothing} through nginx on the new slot; traffic is back on the slot that served" >&2
  exit "$misrouted_exit"
}
running=$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null || true)
mode=create
if [ "$running" = true ]; then
  mode=reload
  if [ "$recreate" = 1 ] && compose --progress plain --dry-run up -d --no-deps nginx 2>&1 \
      | grep -q "Container $container  Recreate\$"; then
    mode=recreate
  fi
fi
tmp=$(mktemp "$nginx_dir/.app.conf.XXXXXX")
cat > "$tmp"
chmod 644 "$tmp"
if [ "$mode" = reload ] && cmp -s "$tmp" "$conf"; then
  rm -f "$tmp"
  move_traffic
  answers_through_nginx
  exit 0
fi
if [ -e "$conf" ]; then cp -p "$conf" "$previous"; else rm -f "$previous"; fi
mv -f "$tmp" "$conf"
if [ "$mode" = reload ]; then
  tested() { docker exec "$container" nginx -t -q; }
else
  tested() { compose run --rm --no-deps -T --name "$container-test-$$" nginx nginx -t -q; }
fi
if ! tested; then
  if [ -e "$previous" ]; then mv -f "$previous" "$conf"; else rm -f "$conf"; fi
  echo 'nginx -t rejected the new config; the previous one is back' >&2
  exit 1
fi
move_traffic
case $mode in
  reload)
    docker exec "$container" nginx -s reload
    echo "nginx reloaded: its config changed" ;;
  recreate)
    compose up -d --no-deps nginx
    echo "nginx re-created: its image, ports or mounts changed" ;;
  create)
    compose up -d --no-deps nginx
    echo "nginx started" ;;
esac
rm -f "$previous"
answers_through_nginx
