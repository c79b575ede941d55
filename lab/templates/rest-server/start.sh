#!/bin/sh
# Both rest-server instances over /srv/restic-rest, once the lab wrote their
# htpasswd files: append-only on :8000 (append.htpasswd), deleting allowed
# on :8001 (admin.htpasswd). Ends when either ends, so Docker shows it.
set -eu
# docker stop: PID 1 has no default action for SIGTERM; the container's end takes both instances down.
trap 'exit 0' TERM INT
dir=/etc/rest-server
server=$(command -v rest-server || command -v restic-rest-server)
until [ -s "$dir/append.htpasswd" ] && [ -s "$dir/admin.htpasswd" ]; do sleep 0.2; done
"$server" --path /srv/restic-rest --listen :8000 --append-only --htpasswd-file "$dir/append.htpasswd" \
  --tls --tls-cert "$dir/tls.pem" --tls-key "$dir/tls.key" &
append=$!
"$server" --path /srv/restic-rest --listen :8001 --htpasswd-file "$dir/admin.htpasswd" \
  --tls --tls-cert "$dir/tls.pem" --tls-key "$dir/tls.key" &
admin=$!
while kill -0 "$append" 2>/dev/null && kill -0 "$admin" 2>/dev/null; do sleep 1; done
echo "a rest-server instance ended" >&2
exit 1
