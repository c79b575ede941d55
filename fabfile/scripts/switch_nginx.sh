#!/bin/sh
# Install the new nginx config (stdin) only if `nginx -t` passes, then
# reload nginx. The previous config is kept as .previous until the switch is
# done and put back if the test fails. nginx is (re-)created from
# COMPOSE_FILE instead of reloaded when it is not running, or when RECREATE
# is 1 and compose would re-create it (its image, ports or mounts changed):
# then the config is tested in a throwaway container of the new service.
# Usage: switch_nginx.sh CONF CONTAINER PROJECT COMPOSE_FILE RECREATE
set -eu
conf=$1 container=$2 project=$3 compose_file=$4 recreate=$5
previous=$conf.previous
nginx_dir=$(dirname "$conf")
mkdir -p "$nginx_dir"
compose() { docker compose -p "$project" -f "$compose_file" "$@"; }
running=$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null || true)
reload=0
if [ "$running" = true ]; then
  reload=1
  if [ "$recreate" = 1 ] && compose --progress plain --dry-run up -d --no-deps nginx 2>&1 \
      | grep -q "Container $container  Recreate\$"; then
    reload=0
  fi
fi
tmp=$(mktemp "$nginx_dir/.app.conf.XXXXXX")
cat > "$tmp"
chmod 644 "$tmp"
if [ -e "$conf" ]; then cp -p "$conf" "$previous"; else rm -f "$previous"; fi
mv -f "$tmp" "$conf"
if [ "$reload" = 1 ]; then
  tested() { docker exec "$container" nginx -t -q; }
  apply() { docker exec "$container" nginx -s reload; }
else
  tested() { compose run --rm --no-deps -T --name "$container-test-$$" nginx nginx -t -q; }
  apply() {
    [ "$running" != true ] || echo "nginx re-created (its image, ports or mounts changed)" >&2
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
