#!/bin/sh
# Install the new nginx config (stdin) only if `nginx -t` passes, then
# reload nginx. The previous config is kept as .previous until the switch is
# done and put back if the test fails. nginx is (re-)created from
# COMPOSE_FILE instead of reloaded only when it is not running or its own
# service (image tag, ports, mounts) differs from the running container's:
# then the config is tested in a throwaway container of the new service.
# Usage: switch_nginx.sh CONF CONTAINER PROJECT COMPOSE_FILE
set -eu
conf=$1 container=$2 project=$3 compose_file=$4
previous=$conf.previous
nginx_dir=$(dirname "$conf")
mkdir -p "$nginx_dir"
compose() { docker compose -p "$project" -f "$compose_file" "$@"; }
wanted=$(compose config --hash nginx | awk '{print $2}')
running=$(docker inspect -f '{{if .State.Running}}{{index .Config.Labels "com.docker.compose.config-hash"}}{{end}}' \
  "$container" 2>/dev/null || true)
tmp=$(mktemp "$nginx_dir/.app.conf.XXXXXX")
cat > "$tmp"
chmod 644 "$tmp"
if [ -e "$conf" ]; then cp -p "$conf" "$previous"; else rm -f "$previous"; fi
mv -f "$tmp" "$conf"
if [ -n "$running" ] && [ "$running" = "$wanted" ]; then
  tested() { docker exec "$container" nginx -t -q; }
  apply() { docker exec "$container" nginx -s reload; }
else
  tested() { compose run --rm --no-deps -T --name "$container-test-$$" nginx nginx -t -q; }
  apply() {
    [ -z "$running" ] || echo "nginx re-created: its service (image, ports or mounts) changed" >&2
    compose up -d --no-deps nginx
  }
fi
if ! tested; then
  if [ -e "$previous" ]; then mv -f "$previous" "$conf"; else rm -f "$conf"; fi
  echo 'nginx -t rejected the new config; the previous one is back' >&2
  exit 1
fi
apply
rm -f "$previous"
