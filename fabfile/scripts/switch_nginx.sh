#!/bin/sh
# Move traffic, and install nginx's config (stdin) and the standby slot's
# upstream groups (NEXT_SLOT_CONF, uploaded beside SLOT_CONF; both empty:
# none) when either changed.
#
# Traffic moves by the slot marker alone: MARK 1 creates MARKER (its slot
# serves), 0 removes it (the other slot serves), empty leaves it. nginx reads
# it per request, so moving traffic reloads nothing and closes no connection.
#
# A changed config is installed only if `nginx -t` passes; then nginx
# reloads, and the marker moves once the old workers have finished their
# requests (at most OLD_WORKERS_SECONDS): until then every worker sends
# new requests to the serving slot, whose groups no deploy changes, so no
# request reaches the standby slot through groups an older config gave it.
# The previous files are kept as .previous until the new slot answered and
# put back if the test fails: a config nginx refuses stops the switch before
# any traffic moved. nginx is (re-)created from COMPOSE_FILE instead of reloaded
# when it is not running, or when RECREATE is 1 and compose would re-create
# it (its image, ports or mounts changed): then the config is tested in a
# throwaway container of the new service, and the new nginx joins NETWORK
# (where it reaches the slots' containers) before it starts. What happened to
# nginx goes to stdout.
#
# Once traffic moved, HEALTH_PATH must answer 2xx through nginx itself (its
# published port, as SCHEME://HOST): a slot nginx cannot reach, or one that
# reaches something else, is caught before the old containers stop. If it
# does not within a few seconds, the marker moves back, the previous config
# and groups (when they changed) come back with a reload, and the script
# exits MISROUTED_EXIT. An empty SCHEME skips the check.
# Usage: switch_nginx.sh CONF CONTAINER PROJECT COMPOSE_FILE RECREATE MARKER MARK SCHEME HOST HEALTH_PATH
#          MISROUTED_EXIT NEXT_SLOT_CONF SLOT_CONF NETWORK OLD_WORKERS_SECONDS RELOAD
# RELOAD 0: a changed config is installed (after `nginx -t`) but the running
# nginx keeps the one it has until it reloads for another reason: its old
# config must still reach both slots (one of an earlier layout that finds the
# containers by Docker's DNS does), as traffic moves at once.
set -eu
conf=$1 container=$2 project=$3 compose_file=$4 recreate=$5 marker=$6 mark=$7
scheme=$8 host=$9
shift 9
health_path=$1 misrouted_exit=$2 next_slot_conf=$3 slot_conf=$4 network=$5 old_workers_seconds=$6 reload=$7
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
  back=""
  if [ -e "$previous" ] || { [ -n "$slot_conf" ] && [ -e "$slot_conf.previous" ]; }; then
    put_back "$conf"
    [ -z "$slot_conf" ] || put_back "$slot_conf"
    # Under RELOAD 0 the running nginx never read the new files.
    if [ "$mode$reload" = reload0 ] || { docker exec "$container" nginx -t -q && docker exec "$container" nginx -s reload; }; then
      back=", with the config it had"
    fi
  fi
  echo "$health_path answered ${code:-nothing} through nginx on the new slot; traffic is back on the slot that served$back" >&2
  exit "$misrouted_exit"
}
# keep FILE: FILE.previous holds what FILE was (none: FILE did not exist).
keep() { if [ -e "$1" ]; then cp -p "$1" "$1.previous"; else rm -f "$1.previous"; fi; }
put_back() { if [ -e "$1.previous" ]; then mv -f "$1.previous" "$1"; else rm -f "$1"; fi; }
# The nginx processes that serve now (the master's workers), by PID.
workers() { docker top "$container" -eo pid,args | awk '/nginx: worker process$/ {print $1}'; }
old_workers_done() {
  deadline=$(( $(date +%s) + old_workers_seconds ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    alive=$(docker top "$container" -eo pid | awk -v old=" $1 " 'index(old, " " $1 " ")' | wc -l)
    [ "$alive" -gt 0 ] || return 0
    sleep 0.2
  done
}
joined() {
  docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$container" \
    | grep -qw -- "$network" || docker network connect "$network" "$container"
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
slot_unchanged() { [ -z "$slot_conf" ] || cmp -s "$next_slot_conf" "$slot_conf"; }
if [ "$mode" = reload ] && cmp -s "$tmp" "$conf" && slot_unchanged; then
  rm -f "$tmp"
  [ -z "$next_slot_conf" ] || rm -f "$next_slot_conf"
  move_traffic
  answers_through_nginx
  exit 0
fi
keep "$conf"
mv -f "$tmp" "$conf"
if [ -n "$slot_conf" ]; then
  keep "$slot_conf"
  chmod 644 "$next_slot_conf"
  mv -f "$next_slot_conf" "$slot_conf"
fi
if [ "$mode" = reload ]; then
  tested() { docker exec "$container" nginx -t -q; }
else
  tested() { compose run --rm --no-deps -T --name "$container-test-$$" nginx nginx -t -q; }
fi
if ! tested; then
  put_back "$conf"
  [ -z "$slot_conf" ] || put_back "$slot_conf"
  echo 'nginx -t rejected the new config; the previous one is back' >&2
  exit 1
fi
case $mode$reload in
  reload0)
    move_traffic
    echo "nginx config installed, not reloaded: nginx keeps the one it runs until its next reload" ;;
  reload1)
    old=$(workers | tr '\n' ' ')
    docker exec "$container" nginx -s reload
    old_workers_done "$old"
    move_traffic
    echo "nginx reloaded: its config changed" ;;
  recreate*|create*)
    move_traffic
    compose up -d --no-deps --no-start nginx
    joined
    docker start "$container" >/dev/null
    if [ "$mode" = create ]; then echo "nginx started"; else echo "nginx re-created: its image, ports or mounts changed"; fi ;;
esac
answers_through_nginx
rm -f "$previous"
[ -z "$slot_conf" ] || rm -f "$slot_conf.previous"
