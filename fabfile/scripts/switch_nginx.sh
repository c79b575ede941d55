#!/bin/sh
# Install the new nginx config (stdin) only if `nginx -t` passes; reload,
# never restart. The previous config is kept as .previous until the switch
# is done and put back if the test fails. When nginx is not running yet
# (RUNNING is 0), the config is tested in a throwaway container and nginx
# is started from COMPOSE_FILE.
# Usage: switch_nginx.sh CONF CONTAINER RUNNING NETWORK IMAGE PROJECT COMPOSE_FILE
set -eu
conf=$1 container=$2 running=$3 network=$4 image=$5 project=$6 compose_file=$7
previous=$conf.previous
nginx_dir=$(dirname "$conf")
mkdir -p "$nginx_dir"
tmp=$(mktemp "$nginx_dir/.app.conf.XXXXXX")
cat > "$tmp"
chmod 644 "$tmp"
if [ -e "$conf" ]; then cp -p "$conf" "$previous"; else rm -f "$previous"; fi
mv -f "$tmp" "$conf"
if [ "$running" = 1 ]; then
  tested() { docker exec "$container" nginx -t -q; }
else
  tested() { docker run --rm --network "$network" -v "$nginx_dir:/etc/nginx/conf.d:ro" "$image" nginx -t -q; }
fi
if ! tested; then
  if [ -e "$previous" ]; then mv -f "$previous" "$conf"; else rm -f "$conf"; fi
  echo 'nginx -t rejected the new config; the previous one is back' >&2
  exit 1
fi
if [ "$running" = 1 ]; then
  docker exec "$container" nginx -s reload
else
  docker compose -p "$project" -f "$compose_file" up -d --no-deps nginx
fi
rm -f "$previous"
